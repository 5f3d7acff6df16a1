//! Automatic certificates (ACME, RFC 8555, with instant-acme): a background task obtains a
//! certificate for each customer domain that wants one (`[acme] all_domains`, or `acme = true`
//! in the customer's entry) with the HTTP-01 challenge, stores it where the TLS listener reads
//! certificates (`<state>/<domain>/fullchain.pem` and `privkey.pem`), and renews it once
//! `renew_at` of its lifetime has passed.
//!
//! As Caddy's automatic HTTPS does, it never blocks start-up and never takes the server down:
//! every attempt is one log line, a failure backs off (doubling, capped) and the domain keeps
//! being served with the default certificate meanwhile. It reads the configuration in force at
//! each round, so reloads (new customers, new domains, `[acme]` changed) apply without a
//! restart. Wildcard domains would need the DNS-01 challenge and are skipped with a log line.
//!
//! Modules: [`challenges`] (the tokens the HTTP listener answers), [`account`], [`issue`] (one
//! order), [`store`] (the files), [`schedule`] (when to try).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::Account;

use crate::app::App;
use crate::config::Acme;

mod account;
pub mod challenges;
mod issue;
mod schedule;
mod store;

pub use challenges::Challenges;
use schedule::Schedule;
use store::Store;

/// How often the task looks at the configuration and at what is due.
const ROUND: Duration = Duration::from_secs(2);

/// The longest one attempt (order, validation, issuance) or the account's set-up may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the task keeps between rounds.
#[derive(Default)]
struct Task {
    /// The settings the account and plans belong to.
    settings: Option<Acme>,
    account: Option<Account>,
    schedule: Schedule,
    /// The account's own back-off (the ACME server unreachable, the CA bundle unreadable).
    account_retry: Option<(SystemTime, u32)>,
    /// Wildcard domains already named in the log.
    skipped: HashSet<String>,
}

/// Runs until the process ends; idle while `[acme]` is off.
pub async fn run(app: Arc<App>) {
    let mut task = Task::default();
    loop {
        let config = app.config();
        match &config.acme {
            None => task = Task::default(),
            Some(acme) => {
                let wanted = config.acme_domains();
                task.round(acme, &wanted, &app.challenges).await;
            }
        }
        tokio::time::sleep(ROUND).await;
    }
}

impl Task {
    /// One round: the account when needed, then every domain that is due, one after another.
    async fn round(&mut self, acme: &Acme, wanted: &[&str], challenges: &Challenges) {
        if self.settings.as_ref() != Some(acme) {
            *self = Task {
                settings: Some(acme.clone()),
                ..Task::default()
            };
        }
        self.schedule.retain(wanted);
        let store = match Store::open(&acme.state) {
            Ok(store) => store,
            Err(e) => {
                let state = acme.state.display();
                tracing::error!(state = %state, error = %e, "acme.state: cannot create the ACME state directory");
                return;
            }
        };
        for &domain in wanted {
            if domain.starts_with("*.") {
                if self.skipped.insert(domain.to_string()) {
                    tracing::warn!(
                        domain,
                        "ACME: a wildcard domain needs the DNS-01 challenge, which yadokari does not do; it keeps the default certificate"
                    );
                }
                continue;
            }
            let plan = self.schedule.plan(domain, || {
                store.validity(domain).map(|v| v.renew_after(acme.renew_at))
            });
            if plan.next > SystemTime::now() {
                continue;
            }
            let Some(account) = self.account(acme, &store).await else {
                return;
            };
            self.attempt(&account, acme, &store, domain, challenges)
                .await;
        }
    }

    /// The account, loaded or created at the first need, with its own back-off.
    async fn account(&mut self, acme: &Acme, store: &Store) -> Option<Account> {
        if let Some(account) = &self.account {
            return Some(account.clone());
        }
        let now = SystemTime::now();
        if let Some((next, _)) = self.account_retry
            && next > now
        {
            return None;
        }
        // Bounded as an attempt is: an ACME server that accepts and never answers must not
        // hold the task (and every later domain) for ever.
        let made = tokio::time::timeout(ATTEMPT_TIMEOUT, account::account(acme, store))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())));
        match made {
            Ok(account) => {
                self.account = Some(account.clone());
                self.account_retry = None;
                Some(account)
            }
            Err(error) => {
                let failures = self.account_retry.map_or(0, |(_, n)| n) + 1;
                let wait = schedule::backoff(failures, acme.retry_min, acme.retry_max);
                self.account_retry = Some((now + wait, failures));
                tracing::warn!(directory = %acme.directory, %error, attempt = failures, retry_in_secs = wait.as_secs(), "ACME: no account; no certificates are ordered until it works");
                None
            }
        }
    }

    /// One attempt at `domain`'s certificate, logged in one line.
    async fn attempt(
        &mut self,
        account: &Account,
        acme: &Acme,
        store: &Store,
        domain: &str,
        challenges: &Challenges,
    ) {
        let attempt = self.schedule.plan(domain, || None).failures + 1;
        let result =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, issue::obtain(account, domain, challenges))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
            }
            .and_then(|issued| save(store, domain, &issued));
        match result {
            Ok(validity) => {
                let renew = validity.renew_after(acme.renew_at);
                self.schedule.succeeded(domain, renew);
                tracing::info!(
                    domain,
                    serial = %validity.serial,
                    not_after = %httpdate::fmt_http_date(validity.not_after),
                    renew_after = %httpdate::fmt_http_date(renew),
                    "ACME: certificate obtained and stored"
                );
            }
            Err(error) => {
                let wait =
                    self.schedule
                        .failed(domain, SystemTime::now(), acme.retry_min, acme.retry_max);
                tracing::warn!(
                    domain,
                    %error,
                    attempt,
                    retry_in_secs = wait.as_secs(),
                    "ACME: cannot obtain a certificate; the domain keeps the default certificate"
                );
            }
        }
    }
}

/// Stores what was issued; returns its validity, read back from the chain.
fn save(store: &Store, domain: &str, issued: &issue::Issued) -> Result<store::Validity, String> {
    let validity = store::validity(issued.chain.as_bytes())
        .ok_or("the ACME server sent a chain that does not parse as a certificate")?;
    store
        .save_certificate(domain, issued.chain.as_bytes(), issued.key.as_bytes())
        .map_err(|e| format!("cannot store it in {}: {e}", store.path().display()))?;
    Ok(validity)
}
