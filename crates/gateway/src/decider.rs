//! One decision per request, in as few round-trips as the load allows.
//!
//! At most `in_flight` calls to the resolver are open at once. A request that finds one free and
//! nobody waiting makes its own `Decide` call, on its own task (no hand-over). Otherwise it joins
//! a queue, and one dispatcher task sends everything waiting in the next free call, at once (a
//! `BatchDecide` with `independent` set, so one bad token fails only its own request). An idle
//! gateway therefore asks for each decision directly; a busy one pays one HTTP/2 round-trip for
//! many decisions.
//! Every request still gets its own decision, from the revision the resolver had active.
//!
//! When the resolver runs in the same process (`policy up`), decisions skip the network: the
//! resolver's own service answers the call directly ([`LocalPolicy`]).

use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::{self, policy_service_client::PolicyServiceClient};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::telemetry::Telemetry;

/// Decisions in one call at most
pub const MAX_BATCH: usize = 128;
/// Requests waiting for a call at most; past it, callers wait (under their own deadline)
const QUEUE: usize = 8_192;

type Reply = oneshot::Sender<Result<v1::DecideResponse, tonic::Status>>;

/// A resolver in the same process (`policy up`): the same service, asked without a network
/// round-trip. It decides from its active snapshot exactly as it does for a `Decide` over gRPC.
pub trait LocalPolicy: Send + Sync + 'static {
    /// The answer `Decide` would give for `req`
    fn decide(&self, req: &v1::DecideRequest) -> Result<v1::DecideResponse, tonic::Status>;
}

/// The sending side; cheap to clone
#[derive(Clone)]
pub struct Decider {
    tx: mpsc::Sender<(v1::DecideRequest, Reply)>,
    permits: Arc<Semaphore>,
    call: Call,
    local: Option<Arc<dyn LocalPolicy>>,
}

impl Decider {
    /// Start the dispatcher on the current Tokio runtime
    pub fn start(
        client: PolicyServiceClient<Channel>,
        auth: MetadataValue<Ascii>,
        timeout: Duration,
        in_flight: usize,
        telemetry: Arc<Telemetry>,
    ) -> Decider {
        let (tx, rx) = mpsc::channel(QUEUE);
        let call = Call {
            client,
            auth,
            timeout,
            telemetry,
        };
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(dispatch(rx, call.clone(), Arc::clone(&permits)));
        Decider {
            tx,
            permits,
            call,
            local: None,
        }
    }

    /// Ask `local` instead of the remote resolver (the gRPC client stays for everything else)
    pub fn in_process(mut self, local: Arc<dyn LocalPolicy>) -> Decider {
        self.local = Some(local);
        self
    }

    /// The resolver's answer for `req`
    pub async fn decide(
        &self,
        req: v1::DecideRequest,
    ) -> Result<v1::DecideResponse, tonic::Status> {
        if let Some(local) = &self.local {
            self.call.telemetry.metrics.resolver_call(1);
            return local.decide(&req);
        }
        // nobody waiting and a call free: ask directly
        if self.tx.capacity() == self.tx.max_capacity()
            && let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned()
        {
            let r = self.call.clone().one(req).await;
            drop(permit);
            return r;
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((req, reply))
            .await
            .map_err(|_| tonic::Status::unavailable("the gateway's decision dispatcher stopped"))?;
        answer
            .await
            .map_err(|_| tonic::Status::unavailable("the decision was dropped"))?
    }
}

/// What one call to the resolver needs
#[derive(Clone)]
struct Call {
    client: PolicyServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    timeout: Duration,
    telemetry: Arc<Telemetry>,
}

async fn dispatch(
    mut rx: mpsc::Receiver<(v1::DecideRequest, Reply)>,
    call: Call,
    permits: Arc<Semaphore>,
) {
    while let Some(first) = rx.recv().await {
        // wait for a free call first: what queues meanwhile goes into this one
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let call = call.clone();
        tokio::spawn(async move {
            let _permit = permit;
            call.run(batch).await;
        });
    }
}

impl Call {
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r.metadata_mut().insert("authorization", self.auth.clone());
        r
    }

    async fn run(mut self, mut batch: Vec<(v1::DecideRequest, Reply)>) {
        // callers that gave up (their deadline passed, their client left) need no decision
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            return;
        }
        if batch.len() == 1 {
            if let Some((req, reply)) = batch.pop() {
                let _ = reply.send(self.one(req).await);
            }
            return;
        }
        self.telemetry.metrics.resolver_call(batch.len());
        self.batch(batch).await;
    }

    /// One decision, one `Decide` call
    async fn one(mut self, req: v1::DecideRequest) -> Result<v1::DecideResponse, tonic::Status> {
        self.telemetry.metrics.resolver_call(1);
        let req = self.request(req);
        self.client
            .decide(req)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn batch(&mut self, batch: Vec<(v1::DecideRequest, Reply)>) {
        let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let msg = v1::BatchDecideRequest {
            requests,
            independent: true,
        };
        let msg = self.request(msg);
        match self.client.batch_decide(msg).await {
            Ok(r) => {
                let r = r.into_inner();
                let mut answers: Vec<Option<Result<v1::DecideResponse, tonic::Status>>> =
                    r.responses.into_iter().map(|d| Some(Ok(d))).collect();
                for f in r.failures {
                    if let Some(slot) = answers.get_mut(f.index as usize) {
                        *slot = Some(Err(tonic::Status::new(f.code.into(), f.message)));
                    }
                }
                for (i, reply) in replies.into_iter().enumerate() {
                    let answer = answers
                        .get_mut(i)
                        .and_then(Option::take)
                        .unwrap_or_else(|| {
                            Err(tonic::Status::internal(
                                "the resolver answered fewer decisions than it was asked for",
                            ))
                        });
                    let _ = reply.send(answer);
                }
            }
            Err(s) => {
                for reply in replies {
                    let _ = reply.send(Err(s.clone()));
                }
            }
        }
    }
}
