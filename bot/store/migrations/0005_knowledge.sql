-- Knowledge served from PostgreSQL (bot.knowledge.pg_*): every replica serves the same
-- published version of a department. Rows mirror the on-disk segment layout
-- (bot/knowledge/segments.py): a segment is immutable and written once; a version lists
-- segments (with tombstoned document numbers) in its meta; kb_current moves in the same
-- transaction that makes a version complete, so a replica never sees a half-written one.
--
-- Access: every document and chunk carries its audience SIGNATURE, the sha256 hex of the
-- canonical JSON of the document's "audiences" (a list of lists; AccessScope.admits needs
-- every list to match). Retrieval computes in Python which signatures the asker's scope
-- admits and filters with "signature = ANY(...)" in the SQL itself.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE kb_segments (
    department text NOT NULL,
    name text NOT NULL,
    embedder text NOT NULL,
    dim integer NOT NULL,
    chunks integer NOT NULL,
    documents integer NOT NULL,
    meta jsonb NOT NULL,
    created double precision NOT NULL,
    PRIMARY KEY (department, name)
);
CREATE TABLE kb_documents (
    department text NOT NULL,
    segment text NOT NULL,
    doc_no integer NOT NULL,
    path text NOT NULL,
    signature text NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (department, segment, doc_no),
    FOREIGN KEY (department, segment) REFERENCES kb_segments ON DELETE CASCADE
);
CREATE TABLE kb_chunks (
    department text NOT NULL,
    segment text NOT NULL,
    local integer NOT NULL,
    doc_no integer NOT NULL,
    signature text NOT NULL,
    anchor text NOT NULL,
    body text NOT NULL,
    embedding vector NOT NULL,
    PRIMARY KEY (department, segment, local),
    FOREIGN KEY (department, segment) REFERENCES kb_segments ON DELETE CASCADE
);
CREATE INDEX kb_chunks_signature ON kb_chunks (department, signature);
-- No HNSW index here: the default dense search is in process (faiss, rebuilt from these
-- rows), and keeping an unused HNSW index current made publishing 100k chunks take
-- 141-645 s instead of 6.4 s (bench.pg_publish --full). `deptbot db vector-index` creates
-- one partial index per embedder dimension (m=32, ef_construction=128) for installations
-- that set `[knowledge] dense = "pgvector"`; without it that mode searches exactly in SQL.
-- Derived files of a segment (tokens, postings, vocabulary, ANN index) that a replica
-- would otherwise recompute from kb_chunks; rows are the source of truth.
CREATE TABLE kb_segment_files (
    department text NOT NULL,
    segment text NOT NULL,
    file text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (department, segment, file),
    FOREIGN KEY (department, segment) REFERENCES kb_segments ON DELETE CASCADE
);
CREATE TABLE kb_versions (
    department text NOT NULL,
    version text NOT NULL,
    meta jsonb NOT NULL,
    files jsonb NOT NULL,
    published double precision NOT NULL,
    PRIMARY KEY (department, version)
);
CREATE TABLE kb_current (
    department text PRIMARY KEY,
    version text NOT NULL,
    published double precision NOT NULL,
    FOREIGN KEY (department, version) REFERENCES kb_versions
);
