@_exported import SIOCore
