//! One certificate from the ACME server for one exact domain: new order → HTTP-01 challenge
//! (the key authorization published in [`Challenges`] while the server validates) →
//! finalize with a fresh ECDSA P-256 key (our own CSR, made with rcgen) → the chain.
//!
//! Nothing is written here: the caller stores what comes back (see [`super::store`]).

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::challenges::Challenges;

/// A certificate chain and its private key, both PEM.
pub struct Issued {
    /// The chain, leaf first.
    pub chain: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// How long the ACME server may take to validate, and then to issue.
const POLLING: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// Tokens published for one order, withdrawn when it ends however it ends.
struct Published<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.challenges.withdraw(token);
        }
    }
}

/// Orders, validates and fetches a certificate for `domain`; the error says what went wrong
/// in the words of the ACME server where it gave any.
pub async fn obtain(
    account: &Account,
    domain: &str,
    challenges: &Challenges,
) -> Result<Issued, String> {
    let identifiers = [Identifier::Dns(domain.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("the new order was refused: {e}"))?;
    let mut published = Published {
        challenges,
        tokens: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("cannot fetch the authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("the authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or("the ACME server offers no HTTP-01 challenge")?;
        let key_authorization = challenge.key_authorization();
        challenges.publish(&challenge.token, key_authorization.as_str());
        published.tokens.push(challenge.token.clone());
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("cannot start the validation: {e}"))?;
    }
    let status = order
        .poll_ready(&POLLING)
        .await
        .map_err(|e| format!("waiting for the validation: {e}"))?;
    drop(published);
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, status).await);
    }
    let (csr, key) = request(domain)?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(|e| format!("the finalization was refused: {e}"))?;
    let chain = order
        .poll_certificate(&POLLING)
        .await
        .map_err(|e| format!("waiting for the certificate: {e}"))?;
    Ok(Issued { chain, key })
}

/// The reason the ACME server gave for an order that did not become ready: its
/// challenges' errors (e.g. "connection refused" or "NXDOMAIN"), or the order's status.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    if let Some(problem) = &order.state().error {
        reasons.push(problem.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        reasons.extend(
            state
                .challenges
                .iter()
                .filter_map(|c| c.error.as_ref())
                .map(ToString::to_string),
        );
    }
    if reasons.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("the validation failed: {}", reasons.join("; "))
    }
}

/// A certificate signing request for `domain` with a fresh ECDSA P-256 key: the DER request
/// and the key's PEM.
fn request(domain: &str) -> Result<(Vec<u8>, String), String> {
    let fail = |e: rcgen::Error| format!("cannot make the certificate request: {e}");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(fail)?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}
