//! The console's OpenID Connect client: the redirect to the provider (authorization code,
//! PKCE S256, state, nonce) and, when the browser comes back, the code exchanged for tokens
//! and the ID token verified (signature against the provider's keys, issuer, audience,
//! expiry, nonce) by the `openidconnect` crate. What the person may do is decided by
//! `domain::ClaimMapping` from the verified claims.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, reqwest,
};
use serde::{Deserialize, Serialize};

use crate::config::OidcSettings;
use crate::domain::{ClaimMapping, claim_strings};
use crate::store::PendingSignIn;

/// How long the provider's discovery document and keys are used before being read again
/// (keys rotate; a sign-in whose ID token fails to verify also drops them at once).
const PROVIDER_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// A provider that does not answer within this long fails the sign-in, not the daemon.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("console.oidc settings unusable: {0}")]
    Settings(String),
    #[error("the identity provider could not be read (discovery, {issuer}): {problem}")]
    Discovery { issuer: String, problem: String },
    #[error("the identity provider refused the authorization code: {0}")]
    Exchange(String),
    #[error("the identity provider's token answer holds no ID token")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(String),
}

/// Every claim of the ID token besides the standard ones, so that the configured groups
/// claim can be any.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider as discovered, with the HTTP client that talks to it.
#[derive(Clone)]
struct Provider {
    client: Arc<ProviderClient>,
    http: reqwest::Client,
    read_at: Instant,
}

/// The person the verified ID token names.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    /// The configured name claim, else the subject.
    pub name: String,
    pub groups: Vec<String>,
}

pub struct Oidc {
    settings: OidcSettings,
    mapping: ClaimMapping,
    provider: tokio::sync::Mutex<Option<Provider>>,
}

impl Oidc {
    /// Nothing is read from the provider yet: a provider that is down must not stop the
    /// daemon, only sign-ins through it.
    pub fn new(settings: &OidcSettings) -> Self {
        Self {
            mapping: settings.claim_mapping(),
            settings: settings.clone(),
            provider: tokio::sync::Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn mapping(&self) -> &ClaimMapping {
        &self.mapping
    }

    async fn provider(&self) -> Result<Provider, OidcError> {
        let mut cached = self.provider.lock().await;
        if let Some(provider) = cached.as_ref()
            && provider.read_at.elapsed() < PROVIDER_MAX_AGE
        {
            return Ok(provider.clone());
        }
        let provider = self.discover().await?;
        *cached = Some(provider.clone());
        Ok(provider)
    }

    async fn forget_provider(&self) {
        *self.provider.lock().await = None;
    }

    async fn discover(&self) -> Result<Provider, OidcError> {
        let s = &self.settings;
        let discovery = |problem: String| OidcError::Discovery {
            issuer: s.issuer.clone(),
            problem,
        };
        // The provider's redirects are not followed (an SSRF guard the crate asks for).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| discovery(e.to_string()))?;
        let issuer =
            IssuerUrl::new(s.issuer.clone()).map_err(|e| OidcError::Settings(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| discovery(chain(&e)))?;
        let secret = (!s.client_secret.is_empty())
            .then(|| ClientSecret::new(s.client_secret.expose().to_owned()));
        let redirect = RedirectUrl::new(s.redirect_url.clone())
            .map_err(|e| OidcError::Settings(e.to_string()))?;
        let client = ProviderClient::from_provider_metadata(
            metadata,
            ClientId::new(s.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect);
        Ok(Provider {
            client: Arc::new(client),
            http,
            read_at: Instant::now(),
        })
    }

    /// Where to send the browser, and what its return must match.
    pub async fn authorization(&self) -> Result<(String, PendingSignIn), OidcError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = provider
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            PendingSignIn {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token against the
    /// nonce this browser's sign-in was started with.
    pub async fn identify(
        &self,
        code: &str,
        pending: &PendingSignIn,
    ) -> Result<Identity, OidcError> {
        let provider = self.provider().await?;
        let tokens = provider
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Settings(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&provider.http)
            .await
            .map_err(|e| OidcError::Exchange(chain(&e)))?;
        let id_token = tokens.id_token().ok_or(OidcError::NoIdToken)?;
        let verifier = provider.client.id_token_verifier();
        let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce.clone())) {
            Ok(claims) => claims,
            Err(e) => {
                // Perhaps the provider rotated its keys: read them again next time.
                self.forget_provider().await;
                return Err(OidcError::IdToken(chain(&e)));
            }
        };
        // Every claim, standard or not, as JSON: the name and groups claims are settings.
        let all = serde_json::to_value(claims).map_err(|e| OidcError::IdToken(e.to_string()))?;
        let subject = claims.subject().as_str().to_owned();
        let name = claim_strings(&all, &self.settings.name_claim)
            .into_iter()
            .next()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| subject.clone());
        Ok(Identity {
            groups: claim_strings(&all, &self.settings.groups_claim),
            subject,
            name,
        })
    }
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
