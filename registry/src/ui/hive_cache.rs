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

/// Merged hive stacks, most recently used last.
#[derive(Debug, Default)]
pub(crate) struct Hives {
    stacks: Mutex<VecDeque<(StackKey, Arc<Stack>)>>,
}

impl Hives {
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
