//! Socket options for BGP transport security: TCP MD5 signatures (RFC 2385, Linux
//! `TCP_MD5SIG`) and GTSM / TTL security (RFC 5082: send with TTL 255, accept only
//! packets whose TTL is at least `255 - hops + 1`). Thin wrappers over `setsockopt`; the
//! only `unsafe` in the speaker lives here.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `linux/tcp.h` (libc does not define it).
#[repr(C)]
struct TcpMd5Sig {
    tcpm_addr: libc::sockaddr_storage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: libc::c_int,
    tcpm_key: [u8; MD5_MAX_KEY_LEN],
}

/// Installs (`key` = `Some`) or removes (`None`) the MD5 key for `peer` on `fd`. On a
/// listening socket this makes the kernel demand signed SYNs from that address; on a
/// socket about to connect it signs our segments. `socket_v6` says whether the socket is
/// AF_INET6 (an IPv4 peer is then given as a v4-mapped address).
pub fn set_md5(
    fd: BorrowedFd<'_>,
    socket_v6: bool,
    peer: IpAddr,
    key: Option<&[u8]>,
) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 password for {peer} is longer than {MD5_MAX_KEY_LEN} bytes"),
        ));
    }
    // SAFETY: sockaddr_storage and the rest of TcpMd5Sig are plain integers and byte
    // arrays for which all-zero is a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let peer = match (peer, socket_v6) {
        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
        (p, _) => p,
    };
    let sa = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    let len = (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `sa.as_ptr()` points to `sa.len()` valid bytes of a sockaddr, `len` is at
    // most that and at most the size of the destination, and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&raw mut sig.tcpm_addr).cast::<u8>(),
            len,
        );
    }
    sig.tcpm_keylen = key.len() as u16;
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// GTSM (RFC 5082) for a peer `hops` away: send with TTL (hop limit) 255 and drop
/// packets that arrive with less than `256 - hops`.
pub fn set_ttl_security(
    fd: BorrowedFd<'_>,
    socket_v6: bool,
    peer_v4: bool,
    hops: u8,
) -> io::Result<()> {
    let min: libc::c_int = 256 - libc::c_int::from(hops.max(1));
    let ttl: libc::c_int = 255;
    if socket_v6 && !peer_v4 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min)
    }
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow; `value` points to
    // a properly initialised `T` whose exact size is passed, and the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn md5_struct_has_kernel_layout() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn md5_and_ttl_options_are_accepted_by_the_kernel() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let peer: IpAddr = "127.0.0.2".parse().expect("addr");
        set_md5(l.as_fd(), false, peer, Some(b"secret")).expect("install key");
        set_md5(l.as_fd(), false, peer, None).expect("remove key");
        let long = [b'x'; 81];
        let e = set_md5(l.as_fd(), false, peer, Some(&long)).expect_err("too long");
        assert!(e.to_string().contains("127.0.0.2"), "{e}");
        set_ttl_security(l.as_fd(), false, true, 1).expect("gtsm");
        let s = socket2::SockRef::from(&l);
        assert_eq!(s.ttl_v4().expect("ttl"), 255);
    }
}
