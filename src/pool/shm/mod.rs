//! Large functions through shared memory: a function whose encoding is
//! [`SHARED_FROM`] bytes or more reaches Linux workers as a sealed `memfd`,
//! not through their sockets.
//!
//! The parent encodes the function straight into the memfd
//! ([`Segment::write_with`], its envelope a few bytes in: see
//! `codec::stream`), or, for one it already holds in memory, writes it
//! there the first time a worker needs it; then seals it (`F_SEAL_WRITE |
//! F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`). Each worker that needs the
//! function gets a `LOAD_SHARED` frame of 29 bytes on its socket (where the
//! envelope starts, and its length) with the descriptor attached
//! (`SCM_RIGHTS`): it maps the memfd read-only, decodes the
//! function in place under its limits, as from a `LOAD` frame's bytes, and
//! unmaps it on a thread of its own (see [`map_and`]). The bytes are never copied per worker, and a worker holds one
//! copy of a capture (the decoded one), not two (a frame buffer and the
//! decoded one). Ship-once is unchanged: a worker that holds a function is
//! not sent it again, through either path.
//!
//! Why a descriptor over the socket, not at spawn: functions are made
//! after their workers start, and a replacement worker needs the same ones.
//! A memfd has no name in any file system: it goes away with its last
//! descriptor and mapping, so a worker killed while it maps one leaves
//! nothing behind, and the parent's descriptor closes when the pool drops
//! the function.
//!
//! Elsewhere (other Unix: no memfd here) and when a memfd cannot be made
//! (a sandbox that forbids it), functions go through the socket as before.

/// Encoded functions of this many bytes or more go through shared memory
/// (Linux). Below it, a copy through the socket costs less than the
/// memfd, the descriptor passing and the mapping (tens of microseconds).
pub(crate) const SHARED_FROM: usize = 1 << 20;

#[cfg(target_os = "linux")]
pub(crate) use linux::{map_and, Receiver, Segment};

#[cfg(not(target_os = "linux"))]
pub(crate) use elsewhere::{map_and, Receiver, Segment};

#[cfg(target_os = "linux")]
mod behind;
#[cfg(not(target_os = "linux"))]
mod elsewhere;
#[cfg(target_os = "linux")]
mod linux;
