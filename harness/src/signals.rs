//! Ctrl-C (and SIGTERM, SIGHUP) in the harness's long-running commands: whatever the process
//! created is removed before it exits.
//!
//! The default action of these signals ends the process at once, so no destructor runs and
//! the namespaces of a benchmark or demo stayed behind. [`clean_up_on_signals`] blocks them in
//! the calling thread, which every thread started later inherits, and waits for them in a
//! thread of its own; when one arrives it removes the namespaces this process created (their
//! veths and XDP attachments go with them), the pins of an xdp-filter peer, and exits with
//! 128 + the signal's number.

use crate::{netns, peer};

/// The signals that end a run cleanly.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set we own.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for sig in SIGNALS {
            libc::sigaddset(&mut s, sig);
        }
        s
    }
}

/// Installs the clean-up; call it first in `main`, before any other thread starts.
pub fn clean_up_on_signals() {
    let s = set();
    // SAFETY: a valid set; only this thread's mask changes (and is inherited from here on).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: a valid set and out-parameter.
        if unsafe { libc::sigwait(&s, &mut sig) } != 0 {
            return;
        }
        let created = netns::created();
        eprintln!(
            "\ninterrupted: removing what this run created ({})",
            if created.is_empty() {
                "no namespaces".to_string()
            } else {
                created.join(", ")
            }
        );
        for n in &created {
            let _ = netns::remove(n);
        }
        peer::clean_leftovers();
        std::process::exit(128 + sig);
    });
}
