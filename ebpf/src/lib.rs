//! Nothing to see on the host: the XDP programs are the `xdpwall-xdp` binary of this package,
//! built for the bpf target by `filter/build.rs`. This empty library only lets `filter` declare a
//! build dependency on the package, so cargo rebuilds the object when its sources change.
#![no_std]
