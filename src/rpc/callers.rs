//! Who is calling, found once per HTTP request: the outcome of checking its Basic
//! credentials, and of looking up each session id it names, is kept for the rest of the
//! request. The envelope asks before it builds a request's `params` (see `raw`), `call`
//! asks again and gets the same answer without a second check; and a batch of a thousand
//! calls costs one check, not a thousand.
//!
//! A publish takes its caller from memory when its key was verified before (`For::Publish`,
//! see `app::auth`): no store read at all; its store transaction checks the key instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::error::{from_app, Operation, RpcError};
use crate::app::{App, Caller};

type Outcome = Result<Caller, RpcError>;

/// Most distinct session ids remembered per request (a batch holds at most 1000 calls).
const MAX_SESSIONS: usize = 1000;

/// What the caller is wanted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum For {
    /// `event.publish`, which takes a remembered caller (`Caller::key_check`).
    Publish,
    /// Anything else: the key is read and checked now.
    Other,
}

#[derive(Default)]
pub struct CallerMemo {
    /// The caller remembered from an earlier request (None: not remembered).
    remembered: std::sync::OnceLock<Option<Caller>>,
    /// A publish's caller when not remembered (`App::caller_for_publish`).
    publishing: OnceCell<Outcome>,
    basic: OnceCell<Outcome>,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
}

impl CallerMemo {
    /// The caller behind the request's HTTP Basic credentials.
    pub async fn basic(&self, app: &App, name: &str, key: &str, client: Option<IpAddr>, wanted: For) -> Outcome {
        if wanted == For::Publish && self.basic.get().is_none() {
            if let Some(caller) = self.remembered.get_or_init(|| app.remembered_caller(name, key)) {
                return Ok(caller.clone());
            }
            return (self.publishing)
                .get_or_init(|| async {
                    let caller = app.caller_for_publish(name, key, client).await;
                    caller.map_err(|e| from_app(e, Operation::Other))
                })
                .await
                .clone();
        }
        self.basic
            .get_or_init(|| async {
                let caller = app.caller_from_basic(name, key, client).await;
                caller.map_err(|e| from_app(e, Operation::Other))
            })
            .await
            .clone()
    }

    /// The caller behind session id `id`.
    pub async fn session(&self, app: &App, id: &str) -> Outcome {
        let cell = {
            let mut sessions = self.sessions.lock().unwrap();
            if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(id) {
                sessions.clear();
            }
            sessions.entry(id.to_string()).or_default().clone()
        };
        cell.get_or_init(|| async {
            match app.caller_from_session(id).await {
                // A portal link's session is the console's: it never calls the API.
                Ok(caller) if caller.portal.is_some() => {
                    Err(RpcError::access_denied("A portal session is for the web console only."))
                }
                Ok(caller) => Ok(caller),
                Err(e) => Err(from_app(e, Operation::Other)),
            }
        })
        .await
        .clone()
    }
}
