"""A download whose spool file the daemon removes meanwhile (the letter let go back to
Notify, or cancelled) is a transport fault of its own kind, not a worker bug with a stack
trace in the daemon's log (seen in the two-floors test: os.replace of the .part file)."""

from appliance.intake import worker


def test_a_spool_file_removed_during_the_download_is_a_spool_fault_not_a_bug(tmp_path, monkeypatch):
    def removed(url, dest, limits, policy):
        raise FileNotFoundError(2, "No such file or directory", str(dest) + ".part")

    monkeypatch.setattr(worker, "fetch", removed)
    job = {"url": "https://bucket.example/a.pdf", "dest": str(tmp_path / "a.pdf"), "hosts": ["bucket.example"],
           "fetch": {"max_bytes": 1 << 20}, "cpu_seconds": 0}
    result = worker.fetch_task(job)
    assert result == {"ok": False, "class": "transport", "kind": "spool",
                      "detail": "the spool file was removed while the PDF was being downloaded"}
    assert "trace" not in result
