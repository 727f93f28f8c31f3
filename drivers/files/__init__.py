"""File-based devices: the file printer (writes PDFs to a folder) and the hot-folder
inserter (run files out, result files in)."""
