//! Saves the window's size and position half a second after they stop changing, not only when
//! the app exits (all that tauri-plugin-window-state does by itself), so that a crash or a killed
//! process keeps them too. The plugin restores them at the next start.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use tauri::{AppHandle, Runtime};
use tauri_plugin_window_state::{AppHandleExt, StateFlags};

const QUIET: Duration = Duration::from_millis(500);

/// Told about every move and resize of a window.
pub struct WindowMemory(Sender<()>);

impl WindowMemory {
    /// Starts the thread that writes the state once the changes settle.
    pub fn start<R: Runtime>(app: AppHandle<R>) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let saver = move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                // A failed write is retried at the next change or at exit.
                let _ = app.save_window_state(StateFlags::all());
            }
        };
        // Without the thread the plugin still saves at exit.
        let _ = std::thread::Builder::new()
            .name("window-state".into())
            .spawn(saver);
        Self(tx)
    }

    /// A window moved or was resized.
    pub fn changed(&self) {
        let _ = self.0.send(());
    }
}
