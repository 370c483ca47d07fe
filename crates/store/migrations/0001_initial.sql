-- Hearth schema, version 1.
--
-- Rules for this folder: a migration is never edited once released; a change is a new file
-- NNNN_name.sql that only adds (tables, columns with defaults, indexes, triggers). Times are
-- INTEGER milliseconds since the Unix epoch (UTC). Enumerations are TEXT with a CHECK, so a
-- row the code cannot read cannot be written.

CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY,
    title           TEXT    NOT NULL,
    -- The leaf of the branch the user looked at last; NULL when the conversation is empty.
    current_leaf_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX conversations_by_update ON conversations(updated_at DESC, id DESC);

-- Messages form a tree per conversation: an edited question or a regenerated answer is a new
-- child of the same parent (a sibling of the message it replaces).
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    conversation_id   INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id         INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    role              TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content           TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('streaming', 'done', 'cancelled', 'failed')),
    error             TEXT,
    model_id          TEXT,
    -- Sampling settings the message was generated with (NULL: not set / engine default).
    temperature       REAL,
    top_p             REAL,
    top_k             INTEGER,
    min_p             REAL,
    repeat_penalty    REAL,
    repeat_last_n     INTEGER,
    seed              INTEGER,
    max_tokens        INTEGER,
    -- Generation statistics.
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    ttft_ms           INTEGER,
    tokens_per_second REAL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX messages_by_parent ON messages(parent_id, id);
CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';

CREATE TABLE models (
    id              TEXT    PRIMARY KEY,
    path            TEXT    NOT NULL,
    source_repo     TEXT,
    source_revision TEXT,
    source_file     TEXT,
    quant           TEXT,
    size_bytes      INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    added_at        INTEGER NOT NULL,
    last_used_at    INTEGER
);

CREATE TABLE documents (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT    NOT NULL UNIQUE,
    original_path  TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    media_type     TEXT    NOT NULL,
    pages          INTEGER,
    extracted_text TEXT    NOT NULL,
    added_at       INTEGER NOT NULL
);

CREATE TABLE chunks (
    id          INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL,
    page_start  INTEGER,
    page_end    INTEGER,
    section     TEXT,
    -- Byte offsets of this chunk in documents.extracted_text, when known.
    text_start  INTEGER,
    text_end    INTEGER,
    text        TEXT    NOT NULL,
    token_count INTEGER NOT NULL,
    UNIQUE (document_id, ordinal)
);

CREATE TABLE summaries (
    id             INTEGER PRIMARY KEY,
    document_id    INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    model_id       TEXT    NOT NULL,
    instructions   TEXT,
    temperature    REAL,
    top_p          REAL,
    top_k          INTEGER,
    min_p          REAL,
    repeat_penalty REAL,
    repeat_last_n  INTEGER,
    seed           INTEGER,
    max_tokens     INTEGER,
    status         TEXT    NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    text           TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX summaries_by_document ON summaries(document_id, id);

-- Partial summaries: level 0 summarizes chunks, level n > 0 combines parts of level n - 1.
CREATE TABLE summary_parts (
    id         INTEGER PRIMARY KEY,
    summary_id INTEGER NOT NULL REFERENCES summaries(id) ON DELETE CASCADE,
    level      INTEGER NOT NULL,
    ordinal    INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (summary_id, level, ordinal)
);

-- The chunks a summary part was made from (for level > 0: the union of its inputs' chunks).
CREATE TABLE summary_part_chunks (
    part_id  INTEGER NOT NULL REFERENCES summary_parts(id) ON DELETE CASCADE,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    PRIMARY KEY (part_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX summary_part_chunks_by_chunk ON summary_part_chunks(chunk_id);

CREATE TABLE translations (
    id             INTEGER PRIMARY KEY,
    source_text    TEXT    NOT NULL,
    document_id    INTEGER REFERENCES documents(id) ON DELETE SET NULL,
    source_lang    TEXT    NOT NULL,
    target_lang    TEXT    NOT NULL,
    model_id       TEXT,
    temperature    REAL,
    top_p          REAL,
    top_k          INTEGER,
    min_p          REAL,
    repeat_penalty REAL,
    repeat_last_n  INTEGER,
    seed           INTEGER,
    max_tokens     INTEGER,
    status         TEXT    NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    result_text    TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX translations_by_time ON translations(created_at DESC, id DESC);

-- Glossary entries apply to one language pair.
CREATE TABLE glossary_entries (
    id          INTEGER PRIMARY KEY,
    source_lang TEXT    NOT NULL,
    target_lang TEXT    NOT NULL,
    source_term TEXT    NOT NULL,
    target_term TEXT    NOT NULL,
    note        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (source_lang, target_lang, source_term)
);

-- One typed value per key: exactly the column named by `kind` is set.
CREATE TABLE settings (
    key         TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('bool', 'int', 'float', 'text')),
    bool_value  INTEGER CHECK (bool_value IN (0, 1)),
    int_value   INTEGER,
    float_value REAL,
    text_value  TEXT,
    updated_at  INTEGER NOT NULL,
    CHECK ((kind = 'bool')  = (bool_value  IS NOT NULL)),
    CHECK ((kind = 'int')   = (int_value   IS NOT NULL)),
    CHECK ((kind = 'float') = (float_value IS NOT NULL)),
    CHECK ((kind = 'text')  = (text_value  IS NOT NULL))
) WITHOUT ROWID;

-- Work that must survive a restart. The payload is opaque to the database (never queried).
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'done', 'cancelled', 'failed')),
    stage          TEXT,
    progress_done  INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER,
    payload        TEXT    NOT NULL,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs(state, id) WHERE state IN ('queued', 'running', 'paused');

-- Full-text search. The trigram tokenizer indexes every run of three characters, so it finds
-- substrings in any script (Chinese and Japanese have no spaces between words). The tables
-- hold no text of their own (external content); triggers keep them in step.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
