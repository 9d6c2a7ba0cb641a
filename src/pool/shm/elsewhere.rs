//! Other Unix: functions go through the socket; nothing here is used.

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
