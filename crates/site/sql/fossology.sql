-- FOSSology's tables as far as holdfast uses them (column names and types as FOSSology has them).
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";

CREATE TABLE users (
  user_pk serial PRIMARY KEY,
  user_name text UNIQUE NOT NULL,
  user_email text
);
INSERT INTO users (user_name, user_email) VALUES ('fossy', 'fossy@localhost');

CREATE TABLE mimetype (
  mimetype_pk serial PRIMARY KEY,
  mimetype_name text UNIQUE NOT NULL
);

CREATE TABLE pfile (
  pfile_pk serial PRIMARY KEY,
  pfile_md5 char(32) NOT NULL,
  pfile_sha1 char(40) NOT NULL,
  pfile_sha256 char(64),
  pfile_size int8 NOT NULL,
  pfile_mimetypefk int4,
  UNIQUE (pfile_md5, pfile_sha1, pfile_size)
);

CREATE TABLE upload (
  upload_pk serial PRIMARY KEY,
  upload_desc text,
  upload_filename text NOT NULL,
  user_fk int4,
  upload_mode int4 NOT NULL DEFAULT 0,
  upload_ts timestamptz DEFAULT now(),
  pfile_fk int4,
  upload_origin text,
  uploadtree_tablename varchar(18) DEFAULT 'uploadtree_a',
  expire_date date,
  expire_action char(1),
  public_perm int4
);

CREATE TABLE uploadtree (
  uploadtree_pk serial PRIMARY KEY,
  parent int4,
  realparent int4,
  upload_fk int4 NOT NULL,
  pfile_fk int4,
  ufile_mode int4,
  lft int4,
  rgt int4,
  ufile_name text
);
CREATE TABLE uploadtree_a (PRIMARY KEY (uploadtree_pk)) INHERITS (uploadtree);
CREATE INDEX uploadtree_a_upload_fk ON uploadtree_a (upload_fk);
CREATE INDEX uploadtree_a_pfile_fk ON uploadtree_a (pfile_fk);

CREATE TABLE agent (
  agent_pk serial PRIMARY KEY,
  agent_name text NOT NULL,
  agent_rev text,
  agent_desc text,
  agent_enabled boolean DEFAULT true
);

CREATE TABLE job (
  job_pk serial PRIMARY KEY,
  job_queued timestamptz DEFAULT now(),
  job_priority int4 DEFAULT 0,
  job_email_notify text,
  job_name text,
  job_upload_fk int4,
  job_folder_fk int4,
  job_user_fk int4,
  job_group_fk int4
);

CREATE TABLE jobqueue (
  jq_pk serial PRIMARY KEY,
  jq_job_fk int4 NOT NULL,
  jq_type text NOT NULL,
  jq_args text,
  jq_starttime timestamptz,
  jq_endtime timestamptz,
  jq_endtext text,
  jq_end_bits int2 NOT NULL DEFAULT 0,
  jq_schedinfo text,
  jq_itemsprocessed int4 NOT NULL DEFAULT 0,
  jq_log text,
  jq_runonpfile text,
  jq_host text,
  jq_cmd_args text
);

CREATE TABLE jobdepends (
  jdep_jq_fk int4 NOT NULL,
  jdep_jq_depends_fk int4
);

CREATE TABLE ars_master (
  ars_pk serial PRIMARY KEY,
  agent_fk int4 NOT NULL,
  upload_fk int4 NOT NULL,
  ars_success boolean NOT NULL DEFAULT false,
  ars_status text,
  ars_starttime timestamptz NOT NULL DEFAULT now(),
  ars_endtime timestamptz
);
CREATE TABLE ununpack_ars () INHERITS (ars_master);
CREATE TABLE nomos_ars () INHERITS (ars_master);

CREATE TABLE reportgen (
  upload_fk int4,
  job_fk int4,
  filepath text
);
