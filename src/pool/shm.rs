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
mod linux {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;

    use rustix::fs::{self as rfs, MemfdFlags, SealFlags};
    use rustix::net::{
        self as rnet, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
        SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
    };

    use crate::codec::Written;

    /// What a worker requires of a memfd before it maps it: nobody can
    /// write, shrink or grow it while it is mapped.
    const SEALS: SealFlags = SealFlags::WRITE
        .union(SealFlags::SHRINK)
        .union(SealFlags::GROW);

    /// Where an encoding written straight into a memfd starts is under
    /// this: the room `codec::stream` leaves for the longest length prefix.
    pub(crate) const MAX_SKIP: usize = crate::codec::MAX_LEN_BYTES;

    /// Bytes a [`Behind`] hands to its writing thread at a time.
    const BEHIND_CHUNK: usize = crate::codec::BUFFER;

    /// A writer of a file whose writes happen on a thread of their own, a
    /// chunk at a time, while its user goes on encoding: on two cores, a
    /// 100 MiB capture's copy into the memfd (the kernel finding and zeroing
    /// its pages) then runs beside its encoding. See [`behind`].
    pub(crate) struct Behind<'f> {
        file: &'f File,
        chunk: Vec<u8>,
        full: mpsc::SyncSender<Vec<u8>>,
        empty: mpsc::Receiver<Vec<u8>>,
        /// Chunks handed over and not yet back.
        out: usize,
    }

    impl Behind<'_> {
        fn hand_over(&mut self) -> io::Result<()> {
            if self.chunk.is_empty() {
                return Ok(());
            }
            let next = match self.empty.try_recv() {
                Ok(mut spare) => {
                    self.out -= 1;
                    spare.clear();
                    spare
                }
                Err(_) => Vec::with_capacity(BEHIND_CHUNK),
            };
            let chunk = std::mem::replace(&mut self.chunk, next);
            self.full.send(chunk).map_err(|_| stopped())?;
            self.out += 1;
            Ok(())
        }

        /// Waits until everything handed over is written.
        fn settle(&mut self) -> io::Result<()> {
            self.hand_over()?;
            while self.out > 0 {
                self.empty.recv().map_err(|_| stopped())?;
                self.out -= 1;
            }
            Ok(())
        }
    }

    fn stopped() -> io::Error {
        io::Error::other("the shared memory's writer stopped")
    }

    /// A memfd's failure as the error of the encoding it was to hold.
    fn shared(error: io::Error) -> crate::Error {
        crate::Error::encode(format!("shared memory: {error}"))
    }

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

    impl Write for Behind<'_> {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.write_all(data)?;
            Ok(data.len())
        }

        fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
            while !data.is_empty() {
                let room = BEHIND_CHUNK - self.chunk.len();
                let (now, rest) = data.split_at(room.min(data.len()));
                self.chunk.extend_from_slice(now);
                data = rest;
                if self.chunk.len() == BEHIND_CHUNK {
                    self.hand_over()?;
                }
            }
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            self.settle()
        }
    }

    impl crate::codec::Sink for Behind<'_> {
        /// Takes `chunk` as it is, leaving a spare: no copy.
        fn write_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
            self.hand_over()?;
            std::mem::swap(&mut self.chunk, chunk);
            self.hand_over()
        }
    }

    impl Seek for Behind<'_> {
        fn seek(&mut self, at: SeekFrom) -> io::Result<u64> {
            // The writing thread writes at the file's offset: moved only
            // once it is idle.
            self.settle()?;
            self.file.seek(at)
        }
    }

    /// Runs `write` on a [`Behind`] writer of `file`, then waits for its
    /// writes.
    ///
    /// # Errors
    /// The file's (as [`shared`]: it explains a `write` that failed on a
    /// writer that stopped), else `write`'s as it was.
    fn behind<T>(
        file: &File,
        write: impl FnOnce(&mut Behind<'_>) -> crate::Result<T>,
    ) -> crate::Result<T> {
        std::thread::scope(|scope| {
            let (full, chunks) = mpsc::sync_channel::<Vec<u8>>(2);
            let (spares, empty) = mpsc::channel::<Vec<u8>>();
            let writer = std::thread::Builder::new()
                .name("serfn-shm".into())
                .spawn_scoped(scope, move || -> io::Result<()> {
                    let mut file = file;
                    for chunk in chunks {
                        file.write_all(&chunk)?;
                        let _ = spares.send(chunk);
                    }
                    Ok(())
                })
                .map_err(shared)?;
            let mut sink = Behind {
                file,
                chunk: Vec::with_capacity(BEHIND_CHUNK),
                full,
                empty,
                out: 0,
            };
            let made = write(&mut sink);
            let settled = sink.settle();
            drop(sink);
            writer
                .join()
                .unwrap_or_else(|_| Err(stopped()))
                .map_err(shared)?;
            let made = made?;
            settled.map_err(shared)?;
            Ok(made)
        })
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

    #[cfg(test)]
    mod tests {
        use std::io::{Cursor, Read, Seek, SeekFrom, Write};

        use super::*;
        use crate::codec::Sink;

        fn memfd() -> File {
            File::from(rfs::memfd_create("serfn behind test", MemfdFlags::CLOEXEC).unwrap())
        }

        fn contents(mut file: File) -> Vec<u8> {
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0)).unwrap();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        }

        /// The same writes, chunks and seeks, on a `Cursor` and through a
        /// [`Behind`] writer of a memfd, whose writes run on another thread.
        fn script(sink: &mut impl Sink) -> std::io::Result<()> {
            sink.seek(SeekFrom::Start(7))?;
            for round in 0..40u32 {
                let mut chunk: Vec<u8> = (0..100_000u32).map(|i| (i ^ round) as u8).collect();
                sink.write_chunk(&mut chunk)?;
                assert!(chunk.is_empty());
                sink.write_all(&round.to_le_bytes().repeat(round as usize * 997))?;
            }
            sink.write_all(&vec![9; 3 << 20])?;
            sink.seek(SeekFrom::Start(2))?;
            sink.write_all(b"head")?;
            sink.seek(SeekFrom::End(0))?;
            sink.write_all(b"tail")
        }

        #[test]
        fn a_file_written_behind_holds_what_a_cursor_does() {
            let mut want = Cursor::new(Vec::new());
            script(&mut want).unwrap();
            let file = memfd();
            let result: Result<(), _> =
                behind(&file, |sink| script(sink).map_err(crate::Error::io));
            assert!(result.is_ok());
            assert!(
                contents(file) == want.into_inner(),
                "the memfd's bytes differ"
            );
        }

        /// Written behind, an envelope and its checksum are the ones written to a cursor.
        #[test]
        fn an_envelope_written_behind_is_the_one_written_to_a_cursor() {
            let header = b"a header".to_vec();
            let capture: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            let capture_into = |out: &mut crate::codec::CaptureWriter<'_>| {
                out.write_all(&capture[..10]).map_err(crate::Error::io)?;
                for piece in capture[10..2_000_000].chunks(1000) {
                    out.write_all(piece).map_err(crate::Error::io)?;
                }
                out.write_all(&capture[2_000_000..])
                    .map_err(crate::Error::io)
            };
            let mut want = Cursor::new(Vec::new());
            let want_written =
                crate::codec::write_envelope(&mut want, &header, capture_into).unwrap();
            let file = memfd();
            let written = behind(&file, |sink| {
                crate::codec::write_envelope(sink, &header, capture_into)
            })
            .unwrap();
            assert_eq!(written, want_written);
            assert!(
                contents(file) == want.into_inner(),
                "the memfd's bytes differ"
            );
        }

        #[test]
        fn an_encoding_error_comes_back_as_it_was() {
            let file = memfd();
            let result: Result<(), _> = behind(&file, |sink| {
                sink.write_all(&[1; 5 << 20]).map_err(crate::Error::io)?;
                Err(crate::Error::encode("no"))
            });
            // As it was: not a shared-memory error.
            assert!(
                matches!(&result, Err(error @ crate::Error::Encode { .. })
                    if error.to_string() == crate::Error::encode("no").to_string()),
                "{result:?}"
            );
        }
    }
}

/// Other Unix: functions go through the socket; nothing here is used.
#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::io::{self, Read};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    /// Never made: no memfd on this system.
    pub(crate) enum Segment {}

    impl Segment {
        pub(crate) fn create(_name: &str, _bytes: &[u8]) -> io::Result<Segment> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub(crate) fn len(&self) -> usize {
            match *self {}
        }

        pub(crate) fn skip(&self) -> usize {
            match *self {}
        }

        pub(crate) fn with_bytes<T>(&self, _f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
            match *self {}
        }

        pub(crate) fn same_bytes(&self, _other: &Segment) -> io::Result<bool> {
            match *self {}
        }

        pub(crate) fn send(&self, _stream: &UnixStream, _frame: &[u8]) -> io::Result<()> {
            match *self {}
        }
    }

    /// A worker's socket, read as it is.
    pub(crate) struct Receiver(UnixStream);

    impl Receiver {
        pub(crate) fn new(stream: UnixStream) -> Self {
            Receiver(stream)
        }

        pub(crate) fn take_fd(&self) -> Option<OwnedFd> {
            None
        }
    }

    impl Read for Receiver {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    pub(crate) fn map_and<T>(
        _fd: OwnedFd,
        _skip: usize,
        _len: usize,
        _decode: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<T> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
