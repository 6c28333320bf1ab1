// A real OpenID provider for the console's browser tests: npm `oidc-provider` (a certified
// implementation) with its development sign-in pages, on 127.0.0.1. One client is
// registered for the daemon (authorization code, PKCE required, client_secret_basic).
// Anyone signs in with any password; the login decides the groups (ACCOUNTS below).
//
//   PORT=... REDIRECT_URI=http://127.0.0.1:<daemon>/console/oidc/callback \
//   CLIENT_ID=callbackd CLIENT_SECRET=... node oidc-provider.mjs
//
// The issuer is http://localhost:PORT while the daemon is reached at 127.0.0.1: two
// different sites, so the browser treats the provider's redirect back as cross-site, as it
// is in production.
import Provider from "oidc-provider";

const { PORT, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET } = process.env;
if (!PORT || !REDIRECT_URI || !CLIENT_ID || !CLIENT_SECRET) {
  console.error("PORT, REDIRECT_URI, CLIENT_ID and CLIENT_SECRET are required");
  process.exit(2);
}

export const ACCOUNTS = {
  sam: ["callback-supervisors", "staff"],
  rita: ["callback-readers", "staff"],
  olga: ["staff"],
};

const provider = new Provider(`http://localhost:${PORT}`, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name"],
    groups: ["groups"],
  },
  // Put the scopes' claims in the ID token, which is what callbackd reads (as most
  // providers can be configured to do for groups).
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, groups: ACCOUNTS[id] ?? [] };
      },
    };
  },
  cookies: { keys: ["callbackd-console-test-only"] },
});

provider.on("server_error", (_ctx, err) => console.error("oidc-provider:", err));
provider.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`oidc-provider listening on http://localhost:${PORT}`);
});
