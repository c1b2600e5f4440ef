"""Python client of EIS, the Event Ingestion Service: `Client.capture` queues an event and
returns its id at once; a background thread delivers it in batches with retries."""

from .auth import BearerAuth, SigV4Auth
from .client import Client
from .model import (CONFLICT, DUPLICATE, GIVEN_UP, REJECTED, STORED, ClientClosed, EISError,
                    InvalidEvent, QueueFull, Report, Result, Stats)

__version__ = "0.1.0"

__all__ = [
    "BearerAuth", "SigV4Auth", "Client", "ClientClosed", "EISError", "InvalidEvent", "QueueFull",
    "Report", "Result", "Stats", "STORED", "DUPLICATE", "REJECTED", "CONFLICT", "GIVEN_UP",
]
