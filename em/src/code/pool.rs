//! A pool of worker threads that run programs in the [`Sandbox`], so that execution
//! overlaps with generation: submit a batch's programs, generate the next batch, then
//! collect. Each worker waits on one sandboxed process at a time; the processes
//! themselves are isolated from one another (their own namespaces and uids).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::sandbox::{Outcome, Sandbox};
use crate::error::{Error, Result};

type Job = (String, Sender<Result<Outcome>>);

/// Worker threads over one [`Sandbox`].
pub struct Pool {
    sandbox: Sandbox,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

/// A submitted program's outcome, to be collected.
pub struct Pending(Receiver<Result<Outcome>>);

impl Pending {
    /// Block until the program has run.
    pub fn wait(self) -> Result<Outcome> {
        self.0.recv().map_err(|_| Error::Sandbox("a sandbox worker stopped before reporting".into()))?
    }
}

impl Pool {
    /// `workers` threads (at least one) running programs in `sandbox`.
    pub fn new(sandbox: Sandbox, workers: usize) -> Pool {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..workers.max(1))
            .map(|i| {
                let (rx, sandbox) = (rx.clone(), sandbox.clone());
                std::thread::Builder::new()
                    .name(format!("entmin-sandbox-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((source, reply))) = job else { return };
                        let _ = reply.send(sandbox.run(&source));
                    })
                    .expect("spawning a sandbox worker thread")
            })
            .collect();
        Pool { sandbox, jobs: Some(tx), workers }
    }

    /// The sandbox the workers use.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Queue `source` to run; collect with [`Pending::wait`].
    pub fn submit(&self, source: String) -> Pending {
        let (tx, rx) = channel();
        if let Some(jobs) = &self.jobs {
            // A send fails only when every worker is gone; `wait` reports it.
            let _ = jobs.send((source, tx));
        }
        Pending(rx)
    }

    /// Run all of `sources` and return their outcomes in order.
    pub fn run_all(&self, sources: Vec<String>) -> Result<Vec<Outcome>> {
        let pending: Vec<Pending> = sources.into_iter().map(|s| self.submit(s)).collect();
        pending.into_iter().map(Pending::wait).collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
