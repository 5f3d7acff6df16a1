//! The ACME account: created once, at the first start with `[acme]`, and kept in the state
//! directory (its credentials hold its private key: the file is 0600); loaded from there on
//! every later start. A changed `directory` (another ACME server) gets a new account.

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};

use super::store::Store;
use crate::config::Acme;

/// The account on `acme.directory`: the stored one, or a new one, stored.
pub async fn account(acme: &Acme, store: &Store) -> Result<Account, String> {
    let stored = store
        .account()
        .map_err(|e| format!("cannot read the stored account: {e}"))?
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(|v| v.get("directory").and_then(|d| d.as_str()) == Some(acme.directory.as_str()));
    if let Some(value) = stored {
        let credentials: AccountCredentials = serde_json::from_value(value)
            .map_err(|e| format!("the stored account cannot be read: {e}"))?;
        return builder(acme)?
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("cannot reach the ACME server: {e}"));
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(acme)?
        .create(&new, acme.directory.clone(), None)
        .await
        .map_err(|e| format!("cannot create the ACME account: {e}"))?;
    let json = serde_json::to_vec(&credentials)
        .map_err(|e| format!("cannot serialise the account: {e}"))?;
    store
        .save_account(&json)
        .map_err(|e| format!("cannot store the account: {e}"))?;
    tracing::info!(id = account.id(), directory = %acme.directory, "ACME account created");
    Ok(account)
}

/// An account builder whose HTTPS client trusts `ca_bundle` when one is given (a test ACME
/// server's own CA), the system's roots otherwise.
fn builder(acme: &Acme) -> Result<AccountBuilder, String> {
    match &acme.ca_bundle {
        Some(ca) => Account::builder_with_root(ca)
            .map_err(|e| format!("acme.ca_bundle {}: {e}", ca.display())),
        None => Account::builder().map_err(|e| format!("cannot set up the HTTPS client: {e}")),
    }
}
