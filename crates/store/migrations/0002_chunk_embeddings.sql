-- Sentence embeddings of document chunks, for question answering (hybrid retrieval).
-- A chunk longer than the embedding model's input is embedded in consecutive windows; each
-- window is one row. `model` names the embedding model (vectors of different models are never
-- compared). `vector` holds `dims` little-endian f32 values, L2-normalized.
CREATE TABLE chunk_embeddings (
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    model    TEXT    NOT NULL,
    window   INTEGER NOT NULL,
    dims     INTEGER NOT NULL,
    vector   BLOB    NOT NULL,
    PRIMARY KEY (chunk_id, model, window)
) WITHOUT ROWID;
