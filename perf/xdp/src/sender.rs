//! A bounded AF_PACKET sender: one prebuilt frame, `sendmmsg` in batches, stopped by a packet
//! count or a deadline, whichever comes first. Back-pressure (ENOBUFS/EAGAIN from a full veth
//! ring) is waited out with a short pause rather than treated as an error: trafgen aborts there.

use std::{
    ffi::CString,
    io, mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    ptr,
    thread::sleep,
    time::{Duration, Instant},
};

/// How long to back off when the device pushes back. Long enough for NAPI to drain part of a
/// 256-entry veth ring, short enough not to idle the link.
const PAUSE: Duration = Duration::from_micros(50);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub packets: u64,
    pub duration: Duration,
    pub batch: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SendStats {
    /// Frames the kernel accepted.
    pub sent: u64,
    pub elapsed: Duration,
    /// Times the sender backed off on ENOBUFS/EAGAIN.
    pub pauses: u64,
    pub calls: u64,
    /// CPU time of the sending thread. Softirq work done on its way out (the veth's NAPI poll,
    /// and with it XDP or the nftables hook) is charged to it unless the kernel accounts IRQ
    /// time separately, so per packet this is the whole path's cost, whatever share of a CPU
    /// the thread got.
    pub cpu: Duration,
}

impl SendStats {
    pub fn pps(&self) -> f64 {
        per_second(self.sent, self.elapsed)
    }

    pub fn cpu_ns_per_packet(&self) -> f64 {
        if self.sent == 0 {
            f64::NAN
        } else {
            self.cpu.as_nanos() as f64 / self.sent as f64
        }
    }
}

pub fn per_second(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// Sends `frame` out of `iface` (in the calling thread's network namespace) until a limit is
/// reached.
pub fn send(iface: &str, frame: &[u8], limits: Limits) -> io::Result<SendStats> {
    let sock = open(iface)?;
    let batch = limits.batch.clamp(1, 1024);
    let mut iov = vec![
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        batch
    ];
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain C data; all-zero is a valid "no name, no control" value.
            let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let mut stats = SendStats::default();
    let cpu0 = thread_cpu()?;
    let start = Instant::now();
    while stats.sent < limits.packets
        && start.elapsed() < limits.duration
        && !crate::stop::requested()
    {
        let want =
            usize::try_from(limits.packets - stats.sent).map_or(batch, |left| left.min(batch));
        // SAFETY: `msgs[..want]` are initialised headers whose iovecs point at `frame`, which
        // outlives the call; the kernel only reads them (and writes `msg_len`).
        let rc =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), want as libc::c_uint, 0) };
        stats.calls += 1;
        if rc < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => {
                    stats.pauses += 1;
                    sleep(PAUSE);
                }
                _ => return Err(err),
            }
        } else {
            stats.sent += rc as u64;
        }
    }
    stats.elapsed = start.elapsed();
    stats.cpu = thread_cpu()?.saturating_sub(cpu0);
    Ok(stats)
}

/// User + system time of the calling thread.
fn thread_cpu() -> io::Result<Duration> {
    // SAFETY: rusage is plain C data; all-zero is valid and getrusage fills it.
    let mut ru: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `ru` is a live rusage the kernel writes into.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// A raw packet socket bound to `iface` with protocol 0: it sends but never receives, so the
/// sender pays nothing for the traffic it generates. The qdisc is bypassed: the device's own
/// back-pressure reaches us as ENOBUFS.
fn open(iface: &str) -> io::Result<OwnedFd> {
    let name = CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and the length passed matches it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            ptr::from_ref(&one).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }

    // SAFETY: sockaddr_ll is plain C data; all-zero is valid before the fields are set.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = 0;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed matches it.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            ptr::from_ref(&sll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}
