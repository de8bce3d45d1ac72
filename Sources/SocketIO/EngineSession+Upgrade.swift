import Logging
import NIOCore

/// The upgrade from polling to WebSocket: a probe transport opens with the sid, answers `2probe`
/// with `3probe`, and replaces polling; anything else closes it and polling goes on. Nothing is
/// written while it runs (the machine holds the backlog).
extension EngineSession {
    func startUpgrade(sid: String) {
        let probe = makeTransport(.websocket)
        self.probe = probe
        probe.onClose = { [weak self] closure in
            guard let self, machine.probeFailed() == .abandon else { return }
            abandonUpgrade(closure.detail)
        }
        probe.onFrame = { [weak self] frame in
            guard let self else { return }
            let result: EngineStateMachine.ProbeResult
            switch frame {
            case .text(let buffer): result = machine.probeAnswered(buffer.readableBytesView, now: loop.now)
            case .binary, .payload: result = machine.probeFailed()
            }
            switch result {
            case .complete: completeUpgrade()
            case .abandon: abandonUpgrade("unexpected answer to the probe")
            case .ignore: break
            }
        }
        if case .upgrading(let deadline) = machine.phase {
            upgradeTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                guard let self, machine.upgradeTimerFired(now: loop.now) == .abandon else { return }
                abandonUpgrade("timeout")
            }
        }
        probe.open(uri: uri(transport: TransportKind.websocket.rawValue, sid: sid), headers: headers())
            .assumeIsolated().whenComplete { [weak self, weak probe] result in
                switch result {
                case .success:
                    probe?.sendText(Array("2probe".utf8), flush: true, promise: nil)
                case .failure(let error):
                    guard let self, machine.probeFailed() == .abandon else { return }
                    abandonUpgrade(describeIOError(error))
                }
            }
    }

    /// The probe failed (the machine is back on polling): it is closed, and polling goes on.
    func abandonUpgrade(_ reason: String) {
        guard let probe else { return }
        logger.debug("upgrade to websocket failed, staying on polling", metadata: ["reason": "\(reason)"])
        self.probe = nil
        probe.detachAndClose()
        upgradeTimer?.cancel()
        transport?.resume()
        flushQueue()
    }

    /// The probe answered (the machine is on WebSocket): it becomes the transport, and polling ends.
    func completeUpgrade() {
        guard let probe else { return }
        self.probe = nil
        upgradeTimer?.cancel()
        probe.sendText([UInt8(ascii: "5")], flush: true, promise: nil)
        transport?.detachAndClose()
        transport = probe
        attachMain(probe)
        logger.debug("upgraded to websocket")
        flushQueue()
    }
}
