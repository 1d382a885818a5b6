// A real OpenID Connect provider for the end-to-end tests (the `oidc-provider` package), over
// HTTPS on loopback: one confidential client (fleetd) that must use PKCE, accounts whose ID
// tokens carry telekiosk's role and clinic claims, and a sign-in page of its own (a user name,
// no password) that records the account's `amr` (e.g. pwd + otp) for the sign-in, as a provider
// with two-step sign-in would. Consent is taken as given (fleetd is a first-party client).
// Started by oidc.test.mjs as a child process with one argument: a JSON file of its settings
// ({ port, cert, key, clientId, secretFile, redirectUri, accounts }); prints `ready ISSUER`.

import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const settings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `https://localhost:${settings.port}`;
/** @type {Record<string, { claims: object, amr: string[] }>} */
const accounts = settings.accounts;

const provider = new Provider(issuer, {
  clients: [{
    client_id: settings.clientId,
    client_secret: fs.readFileSync(settings.secretFile, 'utf8').trim(),
    redirect_uris: [settings.redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true, methods: ['S256'] },
  claims: {
    acr: null, amr: null, auth_time: null, iss: null, sid: null,
    // amr with every ID token: fleetd records (and may require) the second factor it shows.
    openid: ['sub', 'amr', 'auth_time'],
    profile: ['preferred_username', 'name', 'telekiosk_roles', 'telekiosk_clinics'],
    email: ['email'],
  },
  // The role and clinic claims go in the ID token, which is all fleetd reads.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['e2e-only-cookie-key'] },
  async findAccount(ctx, sub) {
    if (!accounts[sub]) return undefined;
    return { accountId: sub, async claims() { return { sub, ...accounts[sub].claims }; } };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const page = (uid, message = '') => `<!doctype html><html><head><title>Maple Health sign-in</title></head>
<body><h1>Maple Health</h1><p>${message}</p>
<form method="post" action="/interaction/${uid}/login">
<label for="login">User name</label><input id="login" name="login" autocomplete="off">
<button type="submit" id="submit">Sign in</button></form></body></html>`;

/** The form body of a POST. */
async function form(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

/** Login: the form, then the account's amr; consent: granted at once. */
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  if (prompt.name === 'consent') {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    if (prompt.details.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'POST') {
    const { login } = await form(req);
    if (!accounts[login]) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page(uid, 'No such user.'));
      return;
    }
    await provider.interactionFinished(req, res,
      { login: { accountId: login, amr: accounts[login].amr } }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end(page(uid));
}

const handler = provider.callback();
const server = https.createServer({
  cert: fs.readFileSync(settings.cert), key: fs.readFileSync(settings.key),
}, (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      console.error('interaction failed', e);
      if (!res.headersSent) res.writeHead(500).end(String(e.message));
    });
    return;
  }
  handler(req, res);
});
server.listen(settings.port, '127.0.0.1', () => console.log(`ready ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
