//! pcap files (classic libpcap format, Ethernet link type, microsecond timestamps): written
//! so that tcpdump and Wireshark read them without warnings, and read back frame by frame.

use std::{
    fs::File,
    io::{BufReader, BufWriter},
    path::{Path, PathBuf},
    time::Duration,
};

use pcap_file::{
    pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter},
    DataLink, Endianness, TsResolution,
};

/// A pcap problem, naming the file (and frame, when reading).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// Opening or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid pcap, or a frame is damaged.
    #[error("{path}: frame {frame}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based frame number (0: the file header).
        frame: usize,
        /// What is wrong.
        message: String,
    },
    /// The link type is not Ethernet.
    #[error("{path}: link type {linktype:?} is not Ethernet")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// What it has.
        linktype: DataLink,
    },
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Capture time since the epoch.
    pub timestamp: Duration,
    /// Length on the wire (may exceed `data.len()` when the capture was cut).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Timestamps for generated captures: a fixed start (2026-01-01T00:00:00Z) so that the same
/// frames always give byte-identical files, one microsecond apart.
pub fn synthetic_timestamp(i: usize) -> Duration {
    Duration::from_secs(1_767_225_600) + Duration::from_micros(i as u64)
}

/// Writes frames to `path` with [`synthetic_timestamp`]s.
pub fn write_frames<F: AsRef<[u8]>>(path: &Path, frames: &[F]) -> Result<(), PcapError> {
    let mut w = Writer::create(path)?;
    for (i, f) in frames.iter().enumerate() {
        w.write(synthetic_timestamp(i), f.as_ref())?;
    }
    Ok(())
}

/// A pcap file being written.
pub struct Writer {
    path: PathBuf,
    inner: PcapWriter<BufWriter<File>>,
}

impl Writer {
    /// Creates (truncates) `path` and writes the file header.
    pub fn create(path: &Path) -> Result<Writer, PcapError> {
        let file = File::create(path).map_err(|source| PcapError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let header = PcapHeader {
            endianness: Endianness::Little,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            snaplen: 65535,
            ..PcapHeader::default()
        };
        let inner = PcapWriter::with_header(BufWriter::new(file), header).map_err(|e| {
            PcapError::Format {
                path: path.to_path_buf(),
                frame: 0,
                message: e.to_string(),
            }
        })?;
        Ok(Writer {
            path: path.to_path_buf(),
            inner,
        })
    }

    /// Appends one frame.
    pub fn write(&mut self, timestamp: Duration, frame: &[u8]) -> Result<(), PcapError> {
        let p = PcapPacket::new(timestamp, frame.len() as u32, frame);
        self.inner.write_packet(&p).map_err(|e| PcapError::Format {
            path: self.path.clone(),
            frame: 0,
            message: e.to_string(),
        })?;
        Ok(())
    }
}

/// Reads every frame of an Ethernet pcap file.
pub fn read_frames(path: &Path) -> Result<Vec<Captured>, PcapError> {
    let file = File::open(path).map_err(|source| PcapError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(BufReader::new(file), path)
}

/// Reads every frame from a reader; `path` only names it in errors.
pub fn read_from<R: std::io::Read>(reader: R, path: &Path) -> Result<Vec<Captured>, PcapError> {
    let fmt = |frame: usize, e: &dyn std::fmt::Display| PcapError::Format {
        path: path.to_path_buf(),
        frame,
        message: e.to_string(),
    };
    let mut r = PcapReader::new(reader).map_err(|e| fmt(0, &e))?;
    let linktype = r.header().datalink;
    if linktype != DataLink::ETHERNET {
        return Err(PcapError::LinkType {
            path: path.to_path_buf(),
            linktype,
        });
    }
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| fmt(out.len() + 1, &e))?;
        out.push(Captured {
            timestamp: p.timestamp,
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameSpec;

    #[test]
    fn round_trip() {
        let frames: Vec<Vec<u8>> = (0..5u16)
            .map(|i| {
                FrameSpec::udp(
                    "10.0.0.1".parse().unwrap(),
                    "10.0.0.2".parse().unwrap(),
                    i,
                    53,
                )
                .build()
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("pktgen-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.pcap");
        write_frames(&p, &frames).unwrap();
        let back = read_frames(&p).unwrap();
        assert_eq!(
            back.iter().map(|c| c.data.clone()).collect::<Vec<_>>(),
            frames
        );
        assert_eq!(back[3].timestamp, synthetic_timestamp(3));
        // The same frames give the same bytes.
        let first = std::fs::read(&p).unwrap();
        write_frames(&p, &frames).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = read_from(&b"not a pcap at all"[..], Path::new("x.pcap")).unwrap_err();
        assert!(e.to_string().starts_with("x.pcap: frame 0:"), "{e}");
    }
}

#[cfg(test)]
mod tcpdump {
    use super::*;
    use crate::FrameSpec;

    /// The files open in tcpdump without a warning, frame for frame. `cargo xtask setup`
    /// installs tcpdump, so this runs (and must pass) wherever the test command runs.
    #[test]
    fn tcpdump_reads_our_files() {
        let dir = std::env::temp_dir().join(format!("pktgen-tcpdump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.pcap");
        let frames: Vec<Vec<u8>> = vec![
            FrameSpec::udp(
                "192.168.1.1".parse().unwrap(),
                "192.168.1.2".parse().unwrap(),
                40001,
                9999,
            )
            .payload(20)
            .build(),
            FrameSpec::tcp(
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                40000,
                443,
            )
            .vlan(0x8100, 7)
            .build(),
            FrameSpec::ping("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()).build(),
        ];
        write_frames(&p, &frames).unwrap();
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-e", "-r"])
            .arg(&p)
            .output()
            .expect("tcpdump is installed by `cargo xtask setup`");
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.lines().count(), 3, "{stdout}");
        assert!(
            stdout.contains("192.168.1.1.40001 > 192.168.1.2.9999: UDP, length 20"),
            "{stdout}"
        );
        assert!(
            stdout.contains("vlan 7") && stdout.contains("2001:db8::1.40000 > 2001:db8::2.443"),
            "{stdout}"
        );
        assert!(stdout.contains("ICMP echo request"), "{stdout}");
        assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
