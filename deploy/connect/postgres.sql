-- Where Kafka Connect lands the transcripts (deploy/connect/*.json, docs/EVENTS.md "Land them in a database").
-- `transcripts` (typed columns, one row per event) is created by the JDBC sink itself (schema.evolution=basic).
-- Debezium's sink takes flat records of primitives only, so the whole event also lands as jsonb,
-- and these views give SQL users its segments, words and speakers as rows.
CREATE TABLE IF NOT EXISTS transcript_documents (event_id text PRIMARY KEY, event jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS transcript_documents_event ON transcript_documents USING gin (event jsonb_path_ops);

CREATE OR REPLACE VIEW transcript_segments AS
  SELECT d.event_id, (s->>'id')::int AS segment_id, (s->>'start')::float8 AS start_s, (s->>'end')::float8 AS end_s,
         s->>'speaker' AS speaker, s->>'text' AS text, (s->>'avg_logprob')::float8 AS avg_logprob,
         (s->>'no_speech_prob')::float8 AS no_speech_prob
  FROM transcript_documents d CROSS JOIN LATERAL jsonb_array_elements(d.event->'segments') s;

CREATE OR REPLACE VIEW transcript_words AS
  SELECT d.event_id, (s->>'id')::int AS segment_id, w.n::int AS word_index,
         (w.word->>'start')::float8 AS start_s, (w.word->>'end')::float8 AS end_s, w.word->>'word' AS word,
         (w.word->>'probability')::float8 AS probability, w.word->>'speaker' AS speaker
  FROM transcript_documents d
  CROSS JOIN LATERAL jsonb_array_elements(d.event->'segments') s
  CROSS JOIN LATERAL jsonb_array_elements(s->'words') WITH ORDINALITY AS w(word, n);

CREATE OR REPLACE VIEW transcript_speakers AS
  SELECT d.event_id, sp->>'id' AS speaker, (sp->>'speech_s')::float8 AS speech_s
  FROM transcript_documents d CROSS JOIN LATERAL jsonb_array_elements(d.event->'speakers') sp;
