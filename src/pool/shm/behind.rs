//! The writer of a large function's memfd: the kernel's copy of each chunk
//! runs on a thread of its own while the encoding goes on.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::mpsc;

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

/// A memfd's failure as the error of the encoding it was to hold.
pub(super) fn shared(error: io::Error) -> crate::Error {
    crate::Error::encode(format!("shared memory: {error}"))
}

fn stopped() -> io::Error {
    io::Error::other("the shared memory's writer stopped")
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
pub(super) fn behind<T>(
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read, Seek, SeekFrom, Write};

    use rustix::fs::{self as rfs, MemfdFlags};

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
        let result: Result<(), _> = behind(&file, |sink| script(sink).map_err(crate::Error::io));
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
        let want_written = crate::codec::write_envelope(&mut want, &header, capture_into).unwrap();
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
