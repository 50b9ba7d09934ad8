//! The merged hive stacks of the Windows images the registry view looked at last, kept in
//! memory up to a byte budget (most recently used last).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use strata_hive::{Hive, HiveName, Stack};
use strata_storage::Digest;

/// Hive bytes kept in memory across requests.
const CACHE_BYTES: usize = 512 << 20;

/// Which stack: the image manifest, the top layer, the hive.
type StackKey = (Digest, usize, HiveName);

/// Stacks built at once (each reads up to 256 MiB of hive files into memory).
const BUILDS: usize = 2;

/// Merged hive stacks, most recently used last.
#[derive(Debug)]
pub(crate) struct Hives {
    stacks: Mutex<VecDeque<(StackKey, Arc<Stack>)>>,
    builds: tokio::sync::Semaphore,
}

impl Default for Hives {
    fn default() -> Self {
        Hives {
            stacks: Mutex::default(),
            builds: tokio::sync::Semaphore::new(BUILDS),
        }
    }
}

impl Hives {
    /// Waits for a turn to build a stack.
    pub(super) async fn building(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.builds.acquire().await.expect("never closed")
    }

    pub(super) fn get(&self, key: &StackKey) -> Option<Arc<Stack>> {
        let mut stacks = self.stacks.lock().expect("hives");
        let i = stacks.iter().position(|(k, _)| k == key)?;
        let entry = stacks.remove(i)?;
        let stack = entry.1.clone();
        stacks.push_back(entry);
        Some(stack)
    }

    pub(super) fn put(&self, key: StackKey, stack: Arc<Stack>) {
        let mut stacks = self.stacks.lock().expect("hives");
        stacks.retain(|(k, _)| *k != key);
        stacks.push_back((key, stack));
        let bytes = |s: &VecDeque<(_, Arc<Stack>)>| -> usize {
            s.iter()
                .map(|(_, st)| st.hives().iter().map(Hive::len).sum::<usize>())
                .sum()
        };
        while stacks.len() > 1 && bytes(&stacks) > CACHE_BYTES {
            stacks.pop_front();
        }
    }
}
