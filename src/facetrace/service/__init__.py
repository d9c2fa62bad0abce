"""The service layer: accounts, audit log, cases, searches, reviews, notifications,
reports, collections and imports. Plain Python over SQLAlchemy sessions; no HTTP or
FastAPI types (the API and the web pages call into it)."""
