import Testing
import BakeoffStore

@Test func sqliteIsLinked() { #expect(sqliteVersion.hasPrefix("3.")) }
