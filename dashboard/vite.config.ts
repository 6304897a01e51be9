// The dashboard's build: one page under /dashboard/, written into the Python package
// (gateway/dashboard/static/, committed and shipped in the wheel) by `make dashboard`.
// Hashed file names, no source maps, no inline scripts or styles (the page's
// Content-Security-Policy allows this origin only), so the same sources give the same bytes.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/dashboard/",
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
