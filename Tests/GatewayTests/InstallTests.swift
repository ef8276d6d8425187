// scripts/install (issue 9): installs the binary, units, example configs and model files into a
// DESTDIR and removes them again; the installed units pass `systemd-analyze verify`, and
// `systemd-analyze security` rates both at an exposure of 2.0 or less.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct InstallTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func run(_ executable: String, _ arguments: [String], in dir: String) throws -> (status: Int32, output: String) {
        let child = try ChildProcess(executable: executable, arguments: arguments, directory: dir, name: "run-\(UUID().uuidString.prefix(6))")
        guard let status = child.waitForExit(timeout: 60) else { child.stop(); throw TestFailure("\(executable) \(arguments) did not finish in 60 s") }
        return (status, child.stdout + child.stderr)
    }

    func install(_ arguments: [String], in dir: String) throws -> (status: Int32, output: String) {
        try run("/bin/bash", [Self.repository + "/scripts/install"] + arguments, in: dir)
    }

    func files(under root: String) -> [String] {
        (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? [])
            .filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &d) && !d.boolValue }.sorted()
    }

    func mode(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1 }

    @Test func installIntoADestdirAndUninstallAgain() throws {
        let dir = TestEnvironment.temporaryDirectory("install-destdir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dest = dir + "/root"
        let first = try install(["--destdir", dest, "--bin", TestEnvironment.forewarnBinary], in: dir)
        #expect(first.status == 0, "\(first.output)")
        let expected = ["etc/forewarn/detector.yaml", "etc/forewarn/gateway.yaml", "etc/forewarn/models/pump.yaml",
                        "etc/systemd/system/forewarn-detector.service", "etc/systemd/system/forewarn-gateway.service",
                        "usr/local/bin/forewarn", "usr/local/share/doc/forewarn/README.md", "usr/local/share/forewarn/install-manifest",
                        "usr/local/share/forewarn/prometheus/forewarn-rules.yaml"]
        #expect(files(under: dest) == expected)
        #expect(mode(dest + "/usr/local/bin/forewarn") == 0o755)
        #expect(mode(dest + "/etc/forewarn/gateway.yaml") == 0o640)
        #expect(FileManager.default.contents(atPath: dest + "/usr/local/bin/forewarn") == FileManager.default.contents(atPath: TestEnvironment.forewarnBinary))
        let unit = try String(contentsOfFile: dest + "/etc/systemd/system/forewarn-gateway.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/forewarn gateway --config /etc/forewarn/gateway.yaml\n"), "paths as on the target, not the destdir")
        #expect(!unit.contains(dest))

        // An operator edits a config; a second install keeps it; uninstall keeps it and removes the rest.
        let gatewayYAML = dest + "/etc/forewarn/gateway.yaml"
        let edited = try String(contentsOfFile: gatewayYAML, encoding: .utf8) + "# edited by the operator\n"
        try edited.write(toFile: gatewayYAML, atomically: true, encoding: .utf8)
        let second = try install(["--destdir", dest, "--bin", TestEnvironment.forewarnBinary], in: dir)
        #expect(second.status == 0 && second.output.contains("keeping the existing \(gatewayYAML)"), "\(second.output)")
        #expect(try String(contentsOfFile: gatewayYAML, encoding: .utf8) == edited)
        let removed = try install(["--uninstall", "--destdir", dest], in: dir)
        #expect(removed.status == 0, "\(removed.output)")
        #expect(removed.output.contains("keeping \(gatewayYAML) (changed since it was installed)"), "\(removed.output)")
        #expect(files(under: dest) == ["etc/forewarn/gateway.yaml"])
        let again = try install(["--uninstall", "--destdir", dest], in: dir)
        #expect(again.status == 1 && again.output.contains("nothing to uninstall"), "\(again.output)")
    }

    @Test func badArgumentsAreRefused() throws {
        let dir = TestEnvironment.temporaryDirectory("install-args")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let relative = try install(["--prefix", "usr/local", "--destdir", dir + "/root"], in: dir)
        #expect(relative.status == 2 && relative.output.contains("must be absolute paths"), "\(relative.output)")
        let unknown = try install(["--frobnicate"], in: dir)
        #expect(unknown.status == 2 && unknown.output.contains("unknown argument '--frobnicate'"), "\(unknown.output)")
        let noBinary = try install(["--destdir", dir + "/root", "--bin", dir + "/nothing"], in: dir)
        #expect(noBinary.status == 1 && noBinary.output.contains("no forewarn binary at \(dir)/nothing"), "\(noBinary.output)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze"))
    func theInstalledUnitsPassSystemdAnalyzeVerifyAndSecurity() throws {
        let dir = TestEnvironment.temporaryDirectory("install-verify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Installed under a temporary prefix and sysconfdir (no destdir), so that the units name a binary that exists.
        let installed = try install(["--prefix", dir + "/usr", "--sysconfdir", dir + "/etc", "--bin", TestEnvironment.forewarnBinary], in: dir)
        #expect(installed.status == 0, "\(installed.output)")
        let units = ["forewarn-gateway.service", "forewarn-detector.service"].map { dir + "/etc/systemd/system/" + $0 }
        let verify = try run("/usr/bin/systemd-analyze", ["verify"] + units, in: dir)
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify: \(verify.output)")
        for unit in units {
            let security = try run("/usr/bin/systemd-analyze", ["security", "--offline=true", unit], in: dir)
            let line = security.output.split(separator: "\n").first { $0.contains("Overall exposure level") } ?? ""
            let exposure = line.split(separator: ":").last.flatMap { Double($0.split(separator: " ").first ?? "") }
            #expect(exposure != nil && exposure! <= 2.0, "\(unit): \(line)")
            print("systemd-analyze security --offline=true \((unit as NSString).lastPathComponent): \(line.trimmingCharacters(in: .whitespaces))")
        }
        #expect(try install(["--uninstall", "--prefix", dir + "/usr", "--sysconfdir", dir + "/etc"], in: dir).status == 0)
        #expect(files(under: dir + "/usr").isEmpty && files(under: dir + "/etc").isEmpty)
    }
}
