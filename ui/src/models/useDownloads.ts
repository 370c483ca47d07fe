/**
 * Downloads in progress, shared by the Models view and the welcome screen: one state per catalog
 * model, kept outside the components (per backend) so a download goes on while the user moves
 * between views. Events from the backend move each state along; `version` changes whenever the
 * catalog should be read again (installed, measured, cancelled).
 */
import { useEffect, useState } from 'preact/hooks';
import type { AppError, Backend, InstalledModel } from '../backend/types';
import { toAppError } from '../backend/types';
import type { DownloadEvent } from '../backend/download-types';

export type DownloadPhase = 'starting' | 'downloading' | 'quantizing' | 'paused' | 'done' | 'failed' | 'cancelled';

export interface DownloadState {
  catalogId: string;
  quant: string;
  quantizeHere: boolean;
  jobId: number | null;
  phase: DownloadPhase;
  downloaded: number;
  total: number | null;
  bytesPerSecond: number;
  etaSeconds: number | null;
  tensorsDone: number;
  tensorsTotal: number;
  error: AppError | null;
}

export interface DownloadCallbacks {
  onDone?(model: InstalledModel): void;
  onPaused?(): void;
  onCancelled?(): void;
  onError?(error: AppError): void;
  onMeasured?(): void;
}

class DownloadStore {
  states = new Map<string, DownloadState>();
  version = 0;
  private listeners = new Set<() => void>();
  private callbacks = new Map<string, DownloadCallbacks>();

  constructor(private backend: Backend) {}

  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private changed() {
    for (const l of this.listeners) l();
  }

  private update(catalogId: string, patch: Partial<DownloadState>) {
    const s = this.states.get(catalogId);
    if (!s) return;
    this.states.set(catalogId, { ...s, ...patch });
    this.changed();
  }

  private onEvent(catalogId: string, e: DownloadEvent) {
    const cb = this.callbacks.get(catalogId) ?? {};
    switch (e.type) {
      case 'started':
        return this.update(catalogId, { jobId: e.jobId });
      case 'progress':
        return this.update(catalogId, {
          phase: 'downloading',
          downloaded: e.downloaded,
          total: e.total,
          bytesPerSecond: e.bytesPerSecond,
          etaSeconds: e.etaSeconds,
        });
      case 'quantizing':
        return this.update(catalogId, { phase: 'quantizing', tensorsDone: e.tensorsDone, tensorsTotal: e.tensorsTotal });
      case 'paused':
        this.update(catalogId, { phase: 'paused', downloaded: e.downloaded, total: e.total ?? this.states.get(catalogId)?.total ?? null });
        return cb.onPaused?.();
      case 'cancelled':
        this.states.delete(catalogId);
        this.version++;
        this.changed();
        return cb.onCancelled?.();
      case 'failed':
        this.update(catalogId, { phase: 'failed', error: e.error });
        return cb.onError?.(e.error);
      case 'done':
        this.states.delete(catalogId);
        this.version++;
        this.changed();
        return cb.onDone?.(e.model);
      case 'measured':
        this.version++;
        this.changed();
        return cb.onMeasured?.();
    }
  }

  /** Starts (or resumes, after a pause or a failure) the download of a catalog model. */
  async start(catalogId: string, quant: string, quantizeHere: boolean, callbacks: DownloadCallbacks) {
    const before = this.states.get(catalogId);
    this.callbacks.set(catalogId, callbacks);
    this.states.set(catalogId, {
      catalogId,
      quant,
      quantizeHere,
      jobId: null,
      phase: 'starting',
      downloaded: before?.downloaded ?? 0,
      total: before?.total ?? null,
      bytesPerSecond: 0,
      etaSeconds: null,
      tensorsDone: 0,
      tensorsTotal: 0,
      error: null,
    });
    this.changed();
    try {
      const started = await this.backend.pullModel({ catalogId, quant, quantizeHere }, (e) => this.onEvent(catalogId, e));
      const s = this.states.get(catalogId);
      if (s && s.jobId === null) this.update(catalogId, { jobId: started.jobId });
    } catch (e) {
      const error = toAppError(e);
      this.update(catalogId, { phase: 'failed', error });
      callbacks.onError?.(error);
    }
  }

  async resume(catalogId: string) {
    const s = this.states.get(catalogId);
    if (s) await this.start(catalogId, s.quant, s.quantizeHere, this.callbacks.get(catalogId) ?? {});
  }

  async pause(catalogId: string) {
    const s = this.states.get(catalogId);
    if (s?.jobId == null) return;
    try {
      await this.backend.pausePull(s.jobId);
    } catch (e) {
      this.callbacks.get(catalogId)?.onError?.(toAppError(e));
    }
  }

  async cancel(catalogId: string) {
    const s = this.states.get(catalogId);
    if (!s) return;
    const running = s.phase === 'starting' || s.phase === 'downloading' || s.phase === 'quantizing';
    if (s.jobId != null) {
      try {
        await this.backend.cancelPull(s.jobId);
      } catch (e) {
        // A paused or failed job the backend no longer knows: nothing left to stop.
        if (running) this.callbacks.get(catalogId)?.onError?.(toAppError(e));
      }
    }
    // A running download confirms with a `cancelled` event; a stopped one is dropped here.
    if (!running) {
      this.states.delete(catalogId);
      this.version++;
      this.changed();
      this.callbacks.get(catalogId)?.onCancelled?.();
    }
  }
}

const stores = new WeakMap<Backend, DownloadStore>();

function storeFor(backend: Backend): DownloadStore {
  let s = stores.get(backend);
  if (!s) {
    s = new DownloadStore(backend);
    stores.set(backend, s);
  }
  return s;
}

export function useDownloads(backend: Backend) {
  const store = storeFor(backend);
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  return {
    states: store.states,
    version: store.version,
    start: (catalogId: string, quant: string, quantizeHere: boolean, callbacks: DownloadCallbacks) =>
      store.start(catalogId, quant, quantizeHere, callbacks),
    resume: (catalogId: string) => store.resume(catalogId),
    pause: (catalogId: string) => store.pause(catalogId),
    cancel: (catalogId: string) => store.cancel(catalogId),
  };
}
