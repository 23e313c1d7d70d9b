//! The graphics drivers' own lines kept out of the tool's stderr: while wgpu looks for
//! adapters, drivers may write to descriptor 2 (Mesa's device-select layer: `error:
//! XDG_RUNTIME_DIR is invalid ...`), which a user would read as the tool's errors.

/// Runs `f` with descriptor 2 pointed at a pipe; returns its result and what was written
/// there, one capture at a time.
#[cfg(unix)]
pub fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::io::Read as _;
    use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};

    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (Ok((mut read_end, write_end)), Ok(saved)) = (
        std::io::pipe(),
        std::io::stderr().as_fd().try_clone_to_owned(),
    ) else {
        return (f(), String::new());
    };
    /// Points descriptor 2 back at the saved stderr, also when `f` panics.
    struct Restore(OwnedFd);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: both descriptors are open; dup2 closes the pipe's copy at 2.
            unsafe { libc::dup2(self.0.as_raw_fd(), 2) };
        }
    }
    std::thread::scope(|s| {
        // The reader empties the pipe as it fills, so a talkative driver never blocks on it.
        let reader = s.spawn(move || {
            let mut text = Vec::new();
            let _ = read_end.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        });
        let result = {
            // SAFETY: both descriptors are open; descriptor 2 now writes into the pipe.
            unsafe { libc::dup2(write_end.as_raw_fd(), 2) };
            let _restore = Restore(saved);
            f()
        };
        // Descriptor 2 is stderr again; closing the last write end lets the reader finish.
        drop(write_end);
        (result, reader.join().unwrap_or_default())
    })
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
