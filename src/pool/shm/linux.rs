//! Linux: a function's encoding in a sealed memfd, its descriptor passed
//! with a frame over the worker's socket, and the worker's read-only mapping.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::fs::{self as rfs, MemfdFlags, SealFlags};
use rustix::net::{
    self as rnet, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use super::behind::{behind, shared, Behind};
use crate::codec::Written;

/// What a worker requires of a memfd before it maps it: nobody can
/// write, shrink or grow it while it is mapped.
const SEALS: SealFlags = SealFlags::WRITE
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW);

/// Where an encoding written straight into a memfd starts is under
/// this: the room `codec::stream` leaves for the longest length prefix.
pub(crate) const MAX_SKIP: usize = crate::codec::MAX_LEN_BYTES;

/// A new memfd that can be sealed, named after this process and `name`:
/// the name shows in /proc/*/fd and /proc/*/maps as
/// `/memfd:serfn <pid> <name> (deleted)`, where tests look for it.
fn new_memfd(name: &str) -> io::Result<File> {
    let label = format!("serfn {} {name}", std::process::id());
    let fd = rfs::memfd_create(
        label.as_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    Ok(File::from(fd))
}

/// Descriptors one `recvmsg` accepts; the pool attaches one per frame.
const MAX_FDS: usize = 4;

/// A function's encoding in a sealed memfd, written once.
pub(crate) struct Segment {
    fd: OwnedFd,
    /// Bytes before the encoding (under [`MAX_SKIP`]).
    skip: usize,
    len: usize,
}

impl Segment {
    /// Writes `bytes` into a new memfd and seals it.
    pub(crate) fn create(name: &str, bytes: &[u8]) -> io::Result<Segment> {
        let mut file = new_memfd(name)?;
        // Written, not mapped writable: F_SEAL_WRITE refuses a file with
        // a writable shared mapping.
        file.write_all(bytes)?;
        rfs::fcntl_add_seals(&file, SEALS | SealFlags::SEAL)?;
        Ok(Segment {
            fd: file.into(),
            skip: 0,
            len: bytes.len(),
        })
    }

    /// A new memfd holding what `write` writes to it, sealed: for bytes
    /// never held whole in memory. `write` returns where in the memfd
    /// they start and how long they are, which must be where they end.
    ///
    /// # Errors
    /// `write`'s, or the memfd's as [`Error::Encode`](crate::Error::Encode).
    pub(crate) fn write_with(
        name: &str,
        write: impl FnOnce(&mut Behind<'_>) -> crate::Result<Written>,
    ) -> crate::Result<(Segment, Written)> {
        let file = new_memfd(name).map_err(shared)?;
        let written = behind(&file, write)?;
        let size = file.metadata().map_err(shared)?.len();
        if Some(size) != written.skip.checked_add(written.len) {
            return Err(crate::Error::encode(format!(
                "{size} bytes written to shared memory, not {} and {}",
                written.skip, written.len
            )));
        }
        rfs::fcntl_add_seals(&file, SEALS | SealFlags::SEAL)
            .map_err(|error| shared(error.into()))?;
        let segment = Segment {
            fd: file.into(),
            skip: usize::try_from(written.skip).map_err(crate::Error::encode)?,
            len: usize::try_from(written.len).map_err(crate::Error::encode)?,
        };
        Ok((segment, written))
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where in the memfd it starts.
    pub(crate) fn skip(&self) -> usize {
        self.skip
    }

    /// Runs `f` on its bytes, mapped read-only.
    pub(crate) fn with_bytes<T>(&self, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        map_and(self.fd.try_clone()?, self.skip, self.len, f)
    }

    /// Whether `other` holds the same bytes: both mapped, compared.
    pub(crate) fn same_bytes(&self, other: &Segment) -> io::Result<bool> {
        if self.len != other.len {
            return Ok(false);
        }
        self.with_bytes(|mine| other.with_bytes(|theirs| mine == theirs))?
    }

    /// Writes `frame` to `stream` with this memfd attached to its first
    /// byte, so that the worker receives the two together.
    pub(crate) fn send(&self, stream: &UnixStream, frame: &[u8]) -> io::Result<()> {
        let fds = [self.fd.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for a descriptor"));
        }
        let sent = loop {
            match rnet::sendmsg(
                stream,
                &[IoSlice::new(frame)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other?,
            }
        };
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // The descriptor went with the first bytes; the rest, if the
        // kernel took less, follows as plain bytes.
        let mut rest = stream;
        rest.write_all(&frame[sent..])
    }
}

/// A worker's end of its socket: reads bytes as [`UnixStream`] does, and
/// keeps the descriptors that come with them, in order, for
/// [`take_fd`](Receiver::take_fd).
pub(crate) struct Receiver {
    stream: UnixStream,
    fds: RefCell<VecDeque<OwnedFd>>,
}

impl Receiver {
    pub(crate) fn new(stream: UnixStream) -> Self {
        Receiver {
            stream,
            fds: RefCell::new(VecDeque::new()),
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub(crate) fn take_fd(&self) -> Option<OwnedFd> {
        self.fds.borrow_mut().pop_front()
    }
}

impl Read for Receiver {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rnet::recvmsg(
            &self.stream,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        let fds = self.fds.get_mut();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if got.flags.contains(ReturnFlags::CTRUNC) {
            return Err(crate::pool::protocol::invalid(
                "more descriptors than a frame carries",
            ));
        }
        Ok(got.bytes)
    }
}

/// Maps the `len` bytes after the first `skip` of the sealed memfd `fd`
/// read-only and gives them to `decode`; then unmaps them on a thread
/// of its own, so that the call waiting behind the load does not wait
/// for it too (4 ms for 100 MiB), or here if no thread can start.
///
/// # Errors
/// `skip` is [`MAX_SKIP`] or more, or the memfd is not sealed against
/// writing, shrinking and growing, is shorter than `skip + len`, or
/// cannot be mapped.
pub(crate) fn map_and<T>(
    fd: OwnedFd,
    skip: usize,
    len: usize,
    decode: impl FnOnce(&[u8]) -> T,
) -> io::Result<T> {
    if skip >= MAX_SKIP {
        return Err(io::Error::other(format!(
            "shared memory {skip} bytes in, past {MAX_SKIP}"
        )));
    }
    let end = skip + len;
    let seals = rfs::fcntl_get_seals(&fd)?;
    if !seals.contains(SEALS) {
        return Err(io::Error::other(
            "shared memory that is not sealed against writes",
        ));
    }
    let size = rfs::fstat(&fd)?.st_size;
    if u64::try_from(size).map_or(true, |size| size < end as u64) || len == 0 {
        return Err(io::Error::other(format!(
            "shared memory of {size} bytes, not {skip} and {len}"
        )));
    }
    let mapping = map_sealed(&File::from(fd), end)?;
    let decoded = decode(&mapping[skip..]);
    // A thread that cannot start drops its closure, and the mapping with it.
    let _ = std::thread::Builder::new()
        .name("serfn-unmap".into())
        .spawn(move || drop(mapping));
    Ok(decoded)
}

/// The crate's one `unsafe`: `memmap2` cannot know that nothing else
/// changes or truncates the file while it is mapped. Here nothing can:
/// the caller checked that the memfd carries F_SEAL_WRITE (no process
/// can write to it or map it writable), F_SEAL_SHRINK (no access past
/// its end can fault with SIGBUS) and F_SEAL_GROW, and that it is at
/// least `len` bytes long; seals cannot be removed. So the `&[u8]` the
/// mapping gives is immutable for as long as it lives.
///
/// Measured against reading the bytes through the socket, which needs
/// no `unsafe`: a 100 MiB capture costs each worker a copy through the
/// kernel and a second resident copy, and the parent a write per worker.
///
/// Not populated: the checksum's thread, reading ahead of the decode,
/// faults the pages in (16 at a time) while the decode runs; populating
/// took 100 MiB's mapping 13 ms on the decoding thread.
#[allow(unsafe_code)]
fn map_sealed(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: see above: the file is sealed against change and is at least `len` long.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}
