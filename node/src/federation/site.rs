//! How a node behaves as a site in federated rounds: honest and prompt by
//! default; simulations make poisoned sites and stragglers with it.

use std::sync::Arc;
use std::time::Duration;

use amoskys_learning::federated::SiteUpdate;

/// Rewrites a site's update (a poisoned site in a simulation).
pub type Rewrite = Arc<dyn Fn(&mut SiteUpdate) + Send + Sync>;

/// How this node behaves as a site in rounds. The default is honest and
/// prompt; simulations make poisoned sites and stragglers with it.
#[derive(Clone, Default)]
pub struct SiteBehaviour {
    /// Rewrites the update before it is signed and sent.
    pub rewrite: Option<Rewrite>,
    /// Waits this long before sending the update.
    pub delay: Duration,
}

impl std::fmt::Debug for SiteBehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteBehaviour")
            .field("rewrite", &self.rewrite.is_some())
            .field("delay", &self.delay)
            .finish()
    }
}
