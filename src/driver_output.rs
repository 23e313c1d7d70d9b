//! Keeping the graphics drivers' own lines out of the tool's stderr.
//!
//! While wgpu looks for adapters, the drivers under it may write to the process's stderr
//! directly: Mesa's Vulkan device-select layer prints `error: XDG_RUNTIME_DIR is invalid or
//! not set in the environment.` twice on a headless machine, and Mesa's EGL warns about render
//! nodes it cannot open. A user reads those as the tool's errors. [`captured`] runs a closure
//! with file descriptor 2 pointed at a pipe and returns what was written there, so that the
//! caller can show it only under `RUST_LOG=debug`.

/// Runs `f` with the process's stderr captured; returns its result and the captured text.
/// Captures are serialized: stderr is one file descriptor for the whole process.
#[cfg(unix)]
pub fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::io::Read as _;
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::sync::Mutex;

    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(ends.as_mut_ptr()) } != 0 {
        return (f(), String::new());
    }
    // SAFETY: pipe() succeeded, so both descriptors are open and owned by nobody else.
    let (read_end, write_end) = unsafe {
        (
            std::fs::File::from_raw_fd(ends[0]),
            OwnedFd::from_raw_fd(ends[1]),
        )
    };
    // SAFETY: dup() of the open descriptor 2; a negative result is checked.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 {
        return (f(), String::new());
    }
    // SAFETY: `saved` is a fresh descriptor that only this function owns.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    // The reader empties the pipe as it fills, so a talkative driver never blocks on it.
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut read_end = read_end;
        let _ = read_end.read_to_end(&mut text);
        text
    });
    /// Points descriptor 2 back at the saved stderr, also when `f` panics.
    struct Restore(OwnedFd);
    impl Drop for Restore {
        fn drop(&mut self) {
            use std::os::fd::AsRawFd as _;
            // SAFETY: both descriptors are open; dup2 closes the pipe's copy at 2.
            unsafe { libc::dup2(self.0.as_raw_fd(), 2) };
        }
    }
    let result = {
        use std::os::fd::AsRawFd as _;
        // SAFETY: both descriptors are open; descriptor 2 now writes into the pipe.
        unsafe { libc::dup2(write_end.as_raw_fd(), 2) };
        let _restore = Restore(saved);
        f()
    };
    // Descriptor 2 is stderr again; closing the last write end lets the reader finish.
    drop(write_end);
    let text = reader.join().unwrap_or_default();
    (result, String::from_utf8_lossy(&text).into_owned())
}

/// Elsewhere the drivers' stderr is left as it is.
#[cfg(not(unix))]
pub fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    (f(), String::new())
}

/// Shows what the drivers wrote, as it was, when `RUST_LOG` asks for debug output.
pub fn show_if_debugging(text: &str) {
    if !text.is_empty() && log::log_enabled!(log::Level::Debug) {
        eprint!("{text}");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn what_goes_to_descriptor_2_is_captured_and_returned() {
        let (value, text) = captured(|| {
            let line = b"a driver speaks\n";
            // SAFETY: writes a valid buffer to descriptor 2.
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            7
        });
        assert_eq!(value, 7);
        assert_eq!(text, "a driver speaks\n");
        // Descriptor 2 is restored: a second capture sees only its own text.
        let ((), again) = captured(|| ());
        assert_eq!(again, "");
    }
}
