//! Raw frames onto an interface through an AF_PACKET socket (the interface is looked up in the
//! calling thread's network namespace). Frames go out exactly as built: any addresses, any
//! malformation.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// An AF_PACKET socket bound to one interface.
pub struct AfPacket {
    fd: OwnedFd,
}

impl AfPacket {
    /// How long one round of [`AfPacket::send_batch`] should last when sending for a time:
    /// sendmmsg has no large fixed cost, so short rounds only serve pacing and stopping on time.
    pub const CALL_SLICE: std::time::Duration = std::time::Duration::from_millis(10);

    /// Opens a socket on `iface`. Needs CAP_NET_RAW.
    pub fn open(iface: &str) -> io::Result<AfPacket> {
        let name = std::ffi::CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface '{iface}' does not exist in this network namespace"),
            ));
        }
        // SAFETY: plain socket call; protocol 0 means the socket receives nothing.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                io::Error::new(
                    e.kind(),
                    "opening a raw socket: permission denied (run as root; needs CAP_NET_RAW)",
                )
            } else {
                e
            });
        }
        // SAFETY: raw is a fresh fd owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_ll with family and index set; size passed correctly.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex;
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // Skip the qdisc layer: frames go straight to the driver (fewer locks per frame).
        let one: libc::c_int = 1;
        // SAFETY: int option, correct size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        Ok(AfPacket { fd })
    }

    /// Sends `count` frames with sendmmsg, 64 per system call, cycling through `frames`
    /// from index `start`. Retries while the socket buffer is full.
    pub fn send_batch(&self, frames: &[Vec<u8>], start: usize, count: usize) -> io::Result<()> {
        const BATCH: usize = 64;
        let mut sent = 0;
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
        while sent < count {
            let n = (count - sent).min(BATCH);
            iov.clear();
            for k in 0..n {
                let f = &frames[(start + sent + k) % frames.len()];
                iov.push(libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                });
            }
            msgs.clear();
            for v in iov.iter_mut() {
                // SAFETY: a zeroed msghdr is valid; it points at one iovec that outlives the call.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = v;
                h.msg_iovlen = 1;
                msgs.push(libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                });
            }
            // SAFETY: msgs holds n valid headers.
            let r = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) => std::thread::yield_now(),
                    _ => return Err(e),
                }
            } else {
                sent += r as usize;
            }
        }
        Ok(())
    }

    /// Sends one frame, retrying while the socket buffer is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: frame is a valid buffer for its length.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) => std::thread::yield_now(),
                _ => return Err(e),
            }
        }
    }
}
