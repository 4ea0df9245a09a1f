-- GET /builds serves its pages from a cache in the API process. Any statement
-- that changes what the list shows notifies channel dicom_builds (after
-- commit), and every listening server drops its cache. Log appends (the
-- "log" column, not in the list) do not notify.
CREATE FUNCTION "dicom_notify_builds"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('dicom_builds', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER "build_list_changed"
  AFTER INSERT OR DELETE OR UPDATE OF "targetId", "status", "artifactPath", "sha256", "error", "createdAt", "startedAt", "finishedAt"
  ON "Build" FOR EACH STATEMENT EXECUTE FUNCTION "dicom_notify_builds"();

CREATE TRIGGER "build_list_truncated"
  AFTER TRUNCATE ON "Build" FOR EACH STATEMENT EXECUTE FUNCTION "dicom_notify_builds"();
