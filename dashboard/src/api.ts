// Calls to the gateway's JSON APIs with the dashboard's cookie session: the browser sends the
// HttpOnly cookie by itself (same origin), and every call carries the session's CSRF token in
// X-Gateway-CSRF. The token lives in this module's memory only (never in storage or URLs).

export interface SessionInfo {
  org_id: string;
  org_name: string;
  key_id: string;
  csrf_token: string;
  expires_in_seconds: number;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class Api {
  private csrf = "";
  /** Called when a call finds the session gone (401): the page shows the sign-in form. */
  onSignedOut: (message: string) => void = () => {};

  async session(): Promise<SessionInfo | null> {
    const response = await fetch("/dashboard/api/session", { credentials: "same-origin" });
    const info = (await unwrap(response)) as SessionInfo | null; // null: nobody signed in
    this.csrf = info?.csrf_token ?? "";
    return info;
  }

  async signIn(key: string): Promise<SessionInfo> {
    const response = await fetch("/dashboard/api/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key }),
    });
    const info = (await unwrap(response)) as SessionInfo;
    this.csrf = info.csrf_token;
    return info;
  }

  async signOut(): Promise<void> {
    await fetch("/dashboard/api/session", {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "x-gateway-csrf": this.csrf },
    });
    this.csrf = "";
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.call<T>(path, { method: "POST", body: JSON.stringify(body), signal });
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.call<T>(path, { method: "GET", signal });
  }

  put<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.call<T>(path, { method: "PUT", body: JSON.stringify(body), signal });
  }

  del<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.call<T>(path, { method: "DELETE", signal });
  }

  /** A call whose answer is not in the `{data, error}` envelope (the PostHog-style APIs,
   * `/healthz`): the whole JSON body (null for an empty 204). */
  plain<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const init: RequestInit = { method, signal };
    if (body !== undefined) init.body = JSON.stringify(body);
    return this.call<T>(path, init, false);
  }

  private async call<T>(path: string, init: RequestInit, envelope = true): Promise<T> {
    const headers: Record<string, string> = { "x-gateway-csrf": this.csrf };
    if (init.body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, { ...init, credentials: "same-origin", headers });
    if (response.status === 401) {
      const message = await errorText(response);
      this.csrf = "";
      this.onSignedOut(message);
      throw new ApiError(401, message);
    }
    if (!envelope) {
      if (!response.ok) throw new ApiError(response.status, await errorText(response));
      const text = await response.text();
      return (text ? JSON.parse(text) : null) as T;
    }
    return (await unwrap(response)) as T;
  }
}

async function unwrap(response: Response): Promise<unknown> {
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  const body = (await response.json()) as { data?: unknown; error?: unknown };
  if (body.error) throw new ApiError(response.status, String(body.error));
  return body.data;
}

/** The error message of a failed call, whichever shape the API answered in. */
async function errorText(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: unknown };
    const error = body.error;
    if (typeof error === "string") return error;
    const detail = (body as { detail?: unknown }).detail; // the PostHog-style APIs
    if (typeof detail === "string") return detail;
    if (error && typeof error === "object" && "message" in error) {
      return String((error as { message: unknown }).message);
    }
  } catch {
    /* not JSON */
  }
  return `The gateway answered ${response.status} ${response.statusText}`.trim();
}
