// Payload values are part of this library's API.
@_exported import SIOCore
