//! Storage requests of a cycle (and of a push's hold) run a bounded number at a time: on S3 each
//! costs a round trip, and a deletion under the intent protocol is four of them.

use std::ops::ControlFlow;

use futures::StreamExt;
use futures::future::BoxFuture;
use strata_storage::Result;

/// Requests in flight at once.
pub(crate) const WIDTH: usize = 16;

/// Runs `jobs` at most [`WIDTH`] at a time and hands each output to `each` as it completes;
/// `each` may stop early. The first error stops everything. (The jobs come boxed in a vector:
/// a lazy iterator of closures held across an await trips rustc's "Send is not general
/// enough" where the router spawns the future.)
pub(crate) async fn each<'a, T: 'a>(
    jobs: Vec<BoxFuture<'a, Result<T>>>,
    mut each: impl FnMut(T) -> ControlFlow<()>,
) -> Result<()> {
    let mut jobs = jobs.into_iter();
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        while running.len() < WIDTH {
            let Some(job) = jobs.next() else { break };
            running.push(job);
        }
        match running.next().await {
            Some(output) => {
                if each(output?).is_break() {
                    return Ok(());
                }
            }
            None => return Ok(()),
        }
    }
}
