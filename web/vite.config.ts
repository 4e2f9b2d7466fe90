// Vite build of the two pages. `dist/login.html` and `dist/dashboard.html` sit at the root and
// everything else under `dist/assets/`; the gateway serves them as /login and /dashboard.
//
// `npm run dev` proxies the gateway's routes to GATEWAY_URL (default http://127.0.0.1:8080), so
// the dev page talks to a real stack. The dev origin (http://localhost:5173) must then be listed
// in the gateway's ALLOWED_ORIGINS and in Better Auth's TRUSTED_ORIGINS.
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";

const gateway = process.env.GATEWAY_URL ?? "http://127.0.0.1:8080";

/** In dev, answer /login and /dashboard like the gateway does (without its session check). */
function prettyPageUrls(): Plugin {
  return {
    name: "pretty-page-urls",
    configureServer(server) {
      server.middlewares.use((req, _res, next) => {
        const path = req.url?.split("?")[0];
        if (path === "/" || path === "/login") req.url = "/login.html";
        else if (path === "/dashboard") req.url = "/dashboard.html";
        next();
      });
    },
  };
}

export default defineConfig({
  plugins: [prettyPageUrls()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    rolldownOptions: {
      input: {
        login: resolve(import.meta.dirname, "login.html"),
        dashboard: resolve(import.meta.dirname, "dashboard.html"),
      },
    },
  },
  server: {
    proxy: {
      "/api/auth": { target: gateway },
      "/todo.v1.TodoService": { target: gateway },
      "/auth.v1.AuthService": { target: gateway },
    },
  },
});
