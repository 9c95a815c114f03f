//! Process exit codes, one constant each, so that scripts driving the tool can
//! tell "nothing happened" from "something happened and was undone".

/// Done, or nothing to do (every node already at the target).
pub const SUCCESS: u8 = 0;
/// An unexpected error: a bug, or a failure the tool has no category for.
pub const FAILURE: u8 = 1;
/// Bad input: command line, inventory, playbook or plan file. Nothing changed.
pub const USAGE: u8 = 2;
/// A preflight check blocks the upgrade. Nothing changed.
pub const BLOCKED: u8 = 3;
/// A node failed its upgrade and was rolled back; the run stopped.
pub const ROLLED_BACK: u8 = 4;
/// A rollback failed: manual intervention needed, see the printed instructions.
pub const ROLLBACK_FAILED: u8 = 5;
/// The run stopped before changing anything further and left every node safe
/// (engines running, quorum intact): a step could not be delivered, a
/// precondition did not hold, or the lease was lost. `resume` (or `apply` with
/// the same pin), from this or any machine, continues it once the cause is fixed.
pub const STOPPED_SAFELY: u8 = 6;
/// Another run holds the lock (EX_TEMPFAIL).
pub const LOCKED: u8 = 75;
/// Interrupted (Ctrl-C, SIGTERM or SIGHUP) after leaving the cluster safe;
/// `resume` continues.
pub const INTERRUPTED: u8 = 130;
