-- Embedding of each chunk (little-endian f32, unit length) when the server has an embeddings
-- model; null otherwise (search is then lexical only).
ALTER TABLE chunks ADD COLUMN embedding BLOB;
