//! Where API keys are checked against their argon2 hashes: a fixed number of threads,
//! each keeping its own argon2 memory, fed through a queue of bounded length.
//!
//! The one idea to know: argon2 costs ~19 MiB and ~25 ms of CPU per check, and anyone
//! can ask for checks (a wrong key costs the same as a right one). Run on a thread per
//! request, a burst of wrong logins took gigabytes that the allocator kept afterwards. Here
//! at most `threads` checks run at once, in memory allocated once per thread, and at most
//! `queue` more wait; a check that finds the queue full is refused at once (`Busy`), so
//! neither memory nor waiting time grows with the number of callers.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::domain::user::{unknown_user_hash, verify_api_key_with, KeyCheckMemory};

/// The queue is full: too many checks are running or waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

struct Job {
    presented: String,
    /// None: a user that does not exist, checked against `unknown_user_hash`.
    stored_hash: Option<String>,
    answer: oneshot::Sender<bool>,
}

/// The checking threads end when the last clone of this is dropped.
pub struct KeyVerifier {
    jobs: SyncSender<Job>,
}

impl KeyVerifier {
    /// Starts `threads` checking threads (at least one) behind a queue of `queue` places.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, waiting) = sync_channel(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("hookd-keycheck-{i}"))
                .spawn(move || check_keys(&waiting))?;
        }
        Ok(Self { jobs })
    }

    /// Whether `presented` matches `stored_hash`; `Busy` when the queue is full. With no
    /// hash (no such user) the check runs all the same, against a dummy, and fails.
    pub async fn verify(&self, presented: &str, stored_hash: Option<&str>) -> Result<bool, Busy> {
        let (answer, reply) = oneshot::channel();
        let job = Job {
            presented: presented.to_string(),
            stored_hash: stored_hash.map(str::to_string),
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(reply.await.unwrap_or(false)),
            Err(TrySendError::Full(_)) => Err(Busy),
            Err(TrySendError::Disconnected(_)) => Ok(false),
        }
    }
}

/// One checking thread: takes jobs until the verifier is dropped.
fn check_keys(waiting: &Mutex<Receiver<Job>>) {
    // Made now, so that the first unknown user is not the one who pays (and shows) for it.
    unknown_user_hash();
    let mut memory = KeyCheckMemory::default();
    loop {
        let next = waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
        let Ok(job) = next else { return };
        if job.answer.is_closed() {
            continue; // the caller went away while the job waited: nobody needs the answer
        }
        let ok = match &job.stored_hash {
            Some(stored) => verify_api_key_with(&job.presented, stored, &mut memory),
            None => {
                verify_api_key_with(&job.presented, unknown_user_hash(), &mut memory);
                false
            }
        };
        let _ = job.answer.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ApiKey;

    #[tokio::test]
    async fn checks_run_and_a_full_queue_refuses_at_once() {
        let key = ApiKey::generate();
        let hash = key.hash();
        let verifier = KeyVerifier::start(1, 1).unwrap();
        assert_eq!(verifier.verify(key.expose(), Some(&hash)).await, Ok(true));
        assert_eq!(verifier.verify("wrong", Some(&hash)).await, Ok(false));
        assert_eq!(verifier.verify(key.expose(), None).await, Ok(false));

        let started = std::time::Instant::now();
        let answers = futures_util::future::join_all((0..10).map(|_| verifier.verify("wrong", Some(&hash)))).await;
        let busy = answers.iter().filter(|a| **a == Err(Busy)).count();
        assert!(busy >= 7, "one running and one waiting at most: {answers:?}");
        assert!(answers.contains(&Ok(false)), "{answers:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
