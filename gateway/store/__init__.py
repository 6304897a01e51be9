"""The control-plane store: organisations, gateway keys, provider keys, credit accounts and
budgets (SQLite or PostgreSQL).

One implementation over async SQLAlchemy serves both backends; the schema is managed by the
Alembic migrations shipped in ``migrations/`` and applied by :meth:`ControlStore.migrate`.
"""

from gateway.store._control import ControlStore
from gateway.store._credits import (
    PERIODS,
    SCOPES,
    AccountState,
    BudgetRefused,
    BudgetRule,
    BudgetState,
    CreditsRefused,
    CreditStore,
    HoldRecord,
    MeterPolicy,
    Period,
    Scope,
    UnknownBudget,
    period_start,
)
from gateway.store._crypto import (
    MISSING_KEY_MESSAGE,
    DecryptionError,
    EncryptionKeyError,
    KeyRing,
    generate_key,
    load_keyring,
)
from gateway.store._hql import SavedQuery, SavedQueryNameExists, SavedQueryStore
from gateway.store._prompt_rows import (
    MAX_PROMPT_VERSIONS,
    PRODUCTION,
    PromptNotFound,
    PromptRecord,
    PromptSlugExists,
    PromptSummary,
    PromptVersionNotFound,
    PromptVersionRecord,
    StaleVersion,
    VersionDeployed,
    VersionLimit,
)
from gateway.store._prompts import PromptStore
from gateway.store._provider_keys import (
    DEPLOYMENT_ID_PATTERN,
    ProviderKeyStore,
    SealedProviderKey,
    mask_key,
)
from gateway.store._records import (
    DEFAULT_ORG,
    PROVIDER_KEY_STATES,
    AmbiguousKey,
    Deployment,
    KeyIdentity,
    KeyNotFound,
    KeyRecord,
    ProviderKeyConflict,
    ProviderKeyNotFound,
    ProviderKeyRecord,
)

__all__ = [
    "DEFAULT_ORG",
    "DEPLOYMENT_ID_PATTERN",
    "MAX_PROMPT_VERSIONS",
    "MISSING_KEY_MESSAGE",
    "PERIODS",
    "PRODUCTION",
    "PROVIDER_KEY_STATES",
    "SCOPES",
    "AccountState",
    "AmbiguousKey",
    "BudgetRefused",
    "BudgetRule",
    "BudgetState",
    "ControlStore",
    "CreditStore",
    "CreditsRefused",
    "DecryptionError",
    "Deployment",
    "EncryptionKeyError",
    "HoldRecord",
    "KeyIdentity",
    "KeyNotFound",
    "KeyRecord",
    "KeyRing",
    "MeterPolicy",
    "Period",
    "PromptNotFound",
    "PromptRecord",
    "PromptSlugExists",
    "PromptStore",
    "PromptSummary",
    "PromptVersionNotFound",
    "PromptVersionRecord",
    "ProviderKeyConflict",
    "ProviderKeyNotFound",
    "ProviderKeyRecord",
    "ProviderKeyStore",
    "SavedQuery",
    "SavedQueryNameExists",
    "SavedQueryStore",
    "Scope",
    "SealedProviderKey",
    "StaleVersion",
    "UnknownBudget",
    "VersionDeployed",
    "VersionLimit",
    "generate_key",
    "load_keyring",
    "mask_key",
    "period_start",
]
