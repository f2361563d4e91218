// A real OpenID Connect provider (npm oidc-provider) for incamera's tests, on 127.0.0.1 only.
//
// Usage: node provider.mjs '<json>' where json is
//   {"port": 0, "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "users": {"<login>": {"password", "name", "email"}}}
// Prints one line "listening <issuer>" on stdout when ready.
//
// The login page is our own small form (no scripts): the account's login and password are
// checked against "users"; consent is granted at once for the requested scopes (a
// first-party client), so the flow is: authorize -> login form -> redirect back with a code.

import http from "node:http";
import { randomBytes } from "node:crypto";
import Provider from "oidc-provider";

const config = JSON.parse(process.argv[2] || "{}");
const users = config.users || {};

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

function loginForm(uid, message) {
  return page(
    "Test identity provider: sign in",
    `${message ? `<p role="alert" id="error">${escapeHtml(message)}</p>` : ""}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label>Username <input name="login" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Continue</button>
</form>`,
  );
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

const server = http.createServer();
server.listen(config.port || 0, "127.0.0.1", () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: (config.clients || []).map((client) => ({
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      ...client,
    })),
    cookies: { keys: [randomBytes(32).toString("hex")] },
    claims: { openid: ["sub"], profile: ["name"], email: ["email", "email_verified"] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    async findAccount(ctx, id) {
      const user = users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: user.name, email: user.email, email_verified: true };
        },
      };
    },
  });

  async function grantAll(details) {
    const { params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    return grant.save();
  }

  const callback = provider.callback();
  server.on("request", async (req, res) => {
    const match = /^\/interaction\/([^/?]+)(\/login)?(?:\?|$)/.exec(req.url);
    if (!match) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === "consent") {
        const grantId = await grantAll(details);
        await provider.interactionFinished(req, res, { consent: { grantId } }, {
          mergeWithLastSubmission: true,
        });
        return;
      }
      if (req.method === "GET" && !match[2]) {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(loginForm(details.uid));
        return;
      }
      if (req.method === "POST" && match[2]) {
        const form = await readForm(req);
        const login = form.get("login") || "";
        const user = Object.hasOwn(users, login) ? users[login] : undefined;
        if (!user || user.password !== form.get("password")) {
          res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
          res.end(loginForm(details.uid, "Wrong username or password."));
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: login } }, {
          mergeWithLastSubmission: false,
        });
        return;
      }
      res.writeHead(405);
      res.end();
    } catch (err) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(`interaction failed: ${err.message}`);
    }
  });
  process.stdout.write(`listening ${issuer}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
