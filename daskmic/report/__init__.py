"""The QC page (:mod:`.page`, ``write_report``) and the plots (:mod:`daskmic.report.plot`).

Nothing is imported here.
"""
