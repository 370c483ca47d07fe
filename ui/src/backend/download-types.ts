/**
 * The catalog-for-this-computer and download shapes (they mirror `hearth_assistant::downloads`'s
 * serde types, camelCase) and the part of the `Backend` that downloads models.
 */
import type { AppError, InstalledModel } from './types';

export type Fit = 'fits' | 'tight' | 'wont_fit';

export interface MachineSummary {
  cpu: string;
  logicalCores: number;
  physicalCores: number | null;
  totalMemory: number;
  availableMemory: number;
  bandwidthBytesPerSecond: number | null;
}

/** One quantization of a catalog model, judged for this computer. */
export interface QuantChoice {
  quant: string;
  recommended: boolean;
  fit: Fit;
  memoryNeeded: number;
  fileBytes: number;
  predictedTokensPerSecond: number | null;
  /** 'download' (a ready file) or 'quantize' (made on this computer from the original weights). */
  comesFrom: 'download' | 'quantize';
  installedId: string;
  installed: boolean;
  isDefault: boolean;
  measuredTokensPerSecond: number | null;
}

export interface CatalogModel {
  id: string;
  name: string;
  description: string;
  architecture: string;
  parameters: number;
  contextLength: number;
  license: string;
  licenseUrl: string | null;
  languages: string[];
  strengths: string[];
  recommendedQuant: string;
  /** The recommended quantization first. */
  quants: QuantChoice[];
  canQuantizeHere: boolean;
  gated: boolean;
}

export interface MachineCatalog {
  machine: MachineSummary;
  /** The context length (tokens) fit was judged at. */
  context: number;
  models: CatalogModel[];
}

export type RecommendationReason = 'comfortable' | 'slow' | 'tight';

export interface Recommendation {
  model: CatalogModel;
  quant: string;
  reason: RecommendationReason;
  /** English; the UI writes its own sentence from `reason`. */
  explanation: string;
}

export interface PullRequest {
  catalogId: string;
  quant: string | null;
  quantizeHere: boolean;
}

export interface PullStarted {
  jobId: number;
  installedId: string;
  quant: string;
}

export type DownloadEvent =
  | { type: 'started'; jobId: number; catalogId: string; quant: string; installedId: string; quantizeHere: boolean }
  | {
      type: 'progress';
      jobId: number;
      file: string;
      downloaded: number;
      total: number | null;
      resumedFrom: number;
      bytesPerSecond: number;
      etaSeconds: number | null;
      retrying: number;
    }
  | { type: 'quantizing'; jobId: number; tensorsDone: number; tensorsTotal: number; bytesWritten: number; bytesTotal: number }
  | { type: 'done'; jobId: number; model: InstalledModel; madeDefault: boolean }
  | { type: 'measured'; jobId: number; installedId: string; tokensPerSecond: number }
  | { type: 'paused'; jobId: number; downloaded: number; total: number | null }
  | { type: 'cancelled'; jobId: number }
  | { type: 'failed'; jobId: number; error: AppError }
  /** A model that is not a chat model (the search model) is in place. */
  | { type: 'installed'; jobId: number; installedId: string; folder: string };

export interface DownloadBackend {
  /** The catalog judged for this computer (context: tokens to judge memory fit at; null: the setting). */
  catalogForMachine(context?: number | null): Promise<MachineCatalog>;
  /** The one model a first run suggests. */
  modelRecommendation(): Promise<Recommendation>;
  /** Starts a download (resumes a paused one of the same model); events stream to `onEvent`. */
  pullModel(request: PullRequest, onEvent: (event: DownloadEvent) => void): Promise<PullStarted>;
  /** Stops a download, keeping what was downloaded (resume: pullModel again). */
  pausePull(jobId: number): Promise<void>;
  /** Stops a running or paused download and deletes its partial file. */
  cancelPull(jobId: number): Promise<void>;
}
