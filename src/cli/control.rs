//! `swarm-upgrade pause|continue|abort`: an operator's request to the run in
//! progress, written into its lease in the swarm (from any machine). The
//! running process obeys at its next safe point and says so.

use super::{ControlArgs, cluster_options, runtime};
use crate::cluster::Cluster;
use crate::exec::lease::Control;
use crate::exit_code;

pub fn run(args: &ControlArgs, control: Control) -> anyhow::Result<u8> {
    let cluster = Cluster::open(cluster_options(&args.swarm)?)?;
    let lease = runtime()?.block_on(cluster.mark_lease(control))?;
    let what = match control {
        Control::Pause => {
            "will pause at its next safe point (no engine down) and wait for `swarm-upgrade continue`"
        }
        Control::Run => "goes on (if it was paused, from where it waits)",
        Control::Abort => {
            "will stop at its next safe point (no engine down), exit 6; `swarm-upgrade resume` continues it later"
        }
    };
    println!("run {} of {}: {what}", lease.run_id, lease.owner);
    Ok(exit_code::SUCCESS)
}
