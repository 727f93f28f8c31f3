"""Sheet marks: clear zones and the QR overlay (pure geometry in ``zones``), and the
marked copy of a letter's PDF (``overlay``)."""
