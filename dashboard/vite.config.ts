// The dashboard's build: one page under /dashboard/, written into the Python package
// (gateway/dashboard/static/, committed and shipped in the wheel) by `make dashboard`.
// Hashed file names, no source maps, no inline scripts or styles (the page's
// Content-Security-Policy allows this origin only), so the same sources give the same bytes.
import { defineConfig } from "vite";

// `npm run dev`: Vite's dev server (hot reload) in front of a running gateway, which answers
// the APIs and the sign-in (GATEWAY_URL, default http://127.0.0.1:8787). The proxy keeps the
// browser's Host header, so the sign-in's origin check and the cookie work as in production.
declare const process: { env: Record<string, string | undefined> }; // Node's, without @types/node
const gateway = process.env.GATEWAY_URL ?? "http://127.0.0.1:8787";

export default defineConfig({
  base: "/dashboard/",
  server: {
    port: 5173,
    strictPort: true,
    // changeOrigin false: Vite's shorthand would rewrite Host to the gateway's.
    proxy: {
      "/v1": { target: gateway, changeOrigin: false },
      "/dashboard/api": { target: gateway, changeOrigin: false },
    },
  },
  build: {
    outDir: "../gateway/dashboard/static",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
