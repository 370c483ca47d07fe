/**
 * Entry point: mounts the app on the Tauri backend inside the desktop app, or on the in-memory
 * mock in a plain browser (`npm run dev:ui`), so the UI can be worked on without the app.
 */
import { render } from 'preact';
import { App } from './app/App';
import { inTauri, tauriBackend } from './backend/ipc';
import { createMockBackend, sampleModel } from './backend/mock';
import './styles.css';

const root = document.getElementById('root');
if (root) {
  const backend = inTauri() ? tauriBackend : createMockBackend({ models: [sampleModel()], chunkDelayMs: 30 });
  render(<App backend={backend} />, root);
}
