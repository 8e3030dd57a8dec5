"""What each template document says: plain-English text pools and one builder per kind of document.

A builder takes a seeded `random.Random` (and sometimes a variant name) and fills a `Draft`: an ordered list of
paragraphs and tables plus marked regions (a block of short unsorted lines, a block of delimited lines). It knows
nothing about files; `templates.py` turns a Draft into a validated `TemplateDoc` and writes it as .docx or .odt.

All text is printable ASCII: the agent types task arguments through the keyboard, and accented letters or curly
quotes would make typing and exact-match checking fragile for no gain in realism.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------------------
# Pools shared by many builders.

FIRST_NAMES = [
    "Amara", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiroshi", "Isla", "Jonas", "Kavya", "Liam",
    "Maya", "Nikolai", "Olivia", "Pedro", "Rosa", "Samuel", "Tara", "Umar", "Vera", "William", "Yusuf", "Zoe",
    "Aisha", "Bruno", "Clara", "Dmitri", "Esther", "Felix", "Greta", "Hugo", "Ingrid", "Jamal", "Keiko", "Lucas",
    "Mei", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Thomas", "Alice", "Owen", "Harriet", "Marcus", "Leila",
]
SURNAMES = [
    "Adams", "Baker", "Chen", "Dawson", "Evans", "Fischer", "Garcia", "Hughes", "Iyer", "Jensen", "Kowalski",
    "Lambert", "Morgan", "Nakamura", "Okafor", "Patel", "Quinlan", "Reyes", "Schneider", "Turner", "Usman", "Varga",
    "Walsh", "Young", "Zimmerman", "Bennett", "Carter", "Doyle", "Ellis", "Foster", "Gallagher", "Harper", "Ingram",
    "Keane", "Lowe", "Mills", "Novak", "Owens", "Price", "Russo", "Shaw", "Thornton", "Vance", "Webb", "Fletcher",
]
COMPANIES = [
    "Harbour and Finch Ltd", "Northwind Ceramics", "Bluebell Logistics", "Copperleaf Software", "Greystone Builders",
    "Meadowlark Foods", "Silverline Printing", "Oakridge Furniture", "Kestrel Engineering", "Riverside Textiles",
    "Lanternfish Studios", "Brightwater Utilities", "Juniper Health", "Foxglove Publishing", "Ironbridge Tools",
    "Tidewell Marine", "Saffron Street Catering", "Pinecrest Outdoor", "Wexford Optics", "Marigold Gardens",
]
TOWNS = [
    ("Bristol", "BS"), ("Leeds", "LS"), ("York", "YO"), ("Norwich", "NR"), ("Exeter", "EX"), ("Cardiff", "CF"),
    ("Dundee", "DD"), ("Bath", "BA"), ("Lincoln", "LN"), ("Chester", "CH"), ("Durham", "DH"), ("Oxford", "OX"),
    ("Brighton", "BN"), ("Carlisle", "CA"), ("Plymouth", "PL"), ("Sheffield", "S"),
]
STREETS = [
    "Mill Lane", "Station Road", "Church Street", "Victoria Avenue", "Orchard Close", "Harbour Row", "King Street",
    "Willow Crescent", "Market Place", "Bridge Street", "Elm Grove", "Castle Hill", "Park View", "Canal Walk",
    "Quarry Road", "Rose Terrace",
]
# Companies by trade, so that a letter or invoice comes from a firm that would plausibly send it.
MAKERS = ["Northwind Ceramics", "Oakridge Furniture", "Ironbridge Tools", "Riverside Textiles", "Meadowlark Foods",
          "Pinecrest Outdoor"]
STUDIOS = ["Lanternfish Studios", "Inkwell Creative", "Foxglove Design Co", "Bright Pixel Studio"]
LETTING_AGENTS = ["Castlegate Lettings", "Homefield Property Management", "Keystone Residential", "Abbey Lettings"]
OUTDOOR_BRANDS = ["Pinecrest Outdoor", "Trailmark Equipment", "Fellside Gear"]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December",
]


# ---------------------------------------------------------------------------------------------------------------
# The builder's notebook.


@dataclass
class Draft:
    """Blocks in document order, as plain dicts that `templates.py` validates.

    Regions are recorded by block index here; templates.py converts them to paragraph indices.
    """

    description: str = ""
    blocks: list[dict] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)

    def para(self, text: str, style: str = "Normal") -> None:
        self.blocks.append({"kind": "paragraph", "style": style, "text": text})

    def title(self, text: str) -> None:
        self.para(text, "Title")

    def h1(self, text: str) -> None:
        self.para(text, "Heading 1")

    def h2(self, text: str) -> None:
        self.para(text, "Heading 2")

    def h3(self, text: str) -> None:
        self.para(text, "Heading 3")

    def quote(self, text: str) -> None:
        self.para(text, "Quote")

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.para(text)

    def bullets(self, items: list[str]) -> None:
        for item in items:
            self.para(item, "List Bullet")

    def numbered(self, items: list[str]) -> None:
        for item in items:
            self.para(item, "List Number")

    def table(self, rows: list[list[str]]) -> None:
        self.blocks.append({"kind": "table", "rows": rows})

    def sortable_lines(self, items: list[str], rng: random.Random) -> None:
        """4-8 short Normal lines in an order that is neither ascending nor descending, for sort tasks."""
        items = list(items)
        rng.shuffle(items)
        if items in (sorted(items), sorted(items, reverse=True)):
            items = items[1:] + items[:1]  # a rotation of a sorted list of 4+ distinct items is unsorted
        first = len(self.blocks)
        self.lines(items)
        self.regions.append({"kind": "sortable_lines", "first_block": first, "last_block": len(self.blocks) - 1})

    def delimited_lines(self, rows: list[list[str]], delimiter: str) -> None:
        """Lines whose fields are joined by a tab or comma, for convert-text-to-table tasks."""
        first = len(self.blocks)
        self.lines([delimiter.join(row) for row in rows])
        self.regions.append(
            {"kind": "delimited_lines", "first_block": first, "last_block": len(self.blocks) - 1, "delimiter": delimiter}
        )


# ---------------------------------------------------------------------------------------------------------------
# Small generators.


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def people(rng: random.Random, n: int) -> list[str]:
    """n distinct full names with distinct surnames, so sorting by any key is unambiguous."""
    firsts = rng.sample(FIRST_NAMES, n)
    lasts = rng.sample(SURNAMES, n)
    return [f"{a} {b}" for a, b in zip(firsts, lasts)]


def address(rng: random.Random) -> tuple[str, str]:
    town, area = rng.choice(TOWNS)
    postcode = f"{area}{rng.randint(1, 19)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXY')}{rng.choice('ABDEFGHJLNPQRSTUWXY')}"
    return f"{rng.randint(2, 98)} {rng.choice(STREETS)}", f"{town} {postcode}"


def date(rng: random.Random, year: int | None = None, month: int | None = None) -> dt.date:
    return dt.date(year or rng.choice([2024, 2025]), month or rng.randint(1, 12), rng.randint(1, 28))


def long_date(d: dt.date) -> str:
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def weekday_date(d: dt.date) -> str:
    return f"{d.strftime('%A')} {d.day} {MONTHS[d.month - 1]} {d.year}"


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def email(name: str, domain: str) -> str:
    first, last = name.lower().split(" ", 1)
    return f"{first}.{last.replace(' ', '')}@{domain}"


def domain_of(company: str) -> str:
    words = [w for w in company.lower().replace(" and ", " ").split() if w not in ("ltd",)]
    return "".join(words[:2]) + ".example.com"


def pick_in_order(rng: random.Random, pool: list[str], k: int) -> list[str]:
    """k items of pool, keeping the pool's order so that prose still reads in sequence."""
    keep = sorted(rng.sample(range(len(pool)), k))
    return [pool[i] for i in keep]


def split_into(sentences: list[str], parts: int) -> list[str]:
    """Join sentences into `parts` paragraphs of roughly equal length."""
    size, extra = divmod(len(sentences), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(" ".join(sentences[start:end]))
        start = end
    return out


# ---------------------------------------------------------------------------------------------------------------
# Report with headings, a table and recommendations.


def build_report(rng: random.Random) -> Draft:
    company = rng.choice(MAKERS)
    quarter = rng.randint(2, 4)
    year = rng.choice([2024, 2025])
    author = person(rng)
    regions = ["North", "South", "East", "West", "Central"]
    before = {r: rng.randint(120, 480) * 1000 for r in regions}
    after = {r: int(before[r] * rng.uniform(0.82, 1.3) / 1000) * 1000 for r in regions}
    change = {r: (after[r] - before[r]) / before[r] * 100 for r in regions}
    best = max(regions, key=lambda r: change[r])
    worst = min(regions, key=lambda r: change[r])
    total_before, total_after = sum(before.values()), sum(after.values())
    total_change = (total_after - total_before) / total_before * 100

    d = Draft(
        description=f"A quarterly sales report for {company} with section headings, an executive summary, "
        "a table of sales by region and a bulleted list of recommendations."
    )
    d.title(f"Quarterly Sales Report: Q{quarter} {year}")
    d.para(f"Prepared by {author}, Commercial Analysis Team, {company}")
    d.h1("Executive Summary")
    direction = "rose" if total_change >= 0 else "fell"
    d.para(
        f"Total sales {direction} by {abs(total_change):.1f} percent compared with the previous quarter, "
        f"reaching {money(total_after)}. The {best} region led the growth, while the {worst} region had the "
        "weakest quarter and needs closer attention before the end of the year."
    )
    d.para(
        rng.choice(
            [
                "Demand for the core product range held steady, and the new subscription bundles sold better than forecast.",
                "Retail partners reported steady footfall, although online orders again grew faster than in-store sales.",
                "Most of the growth came from repeat customers, which suggests that the loyalty programme is working.",
            ]
        )
        + " "
        + rng.choice(
            [
                "Shipping delays in the first month cost an estimated two weeks of orders in some areas.",
                "A late price change by our main supplier reduced margins slightly but did not affect volumes.",
                "Staff shortages in the warehouse slowed deliveries during the busiest fortnight.",
            ]
        )
    )
    d.h1("Results by Region")
    d.para(f"The table below compares sales in Q{quarter - 1} and Q{quarter} for each sales region.")
    rows = [["Region", f"Q{quarter - 1} sales", f"Q{quarter} sales", "Change"]]
    for r in regions:
        rows.append([r, money(before[r]), money(after[r]), f"{change[r]:+.1f}%"])
    d.table(rows)
    d.h2(f"Why the {best} Region Grew")
    d.para(
        f"The {best} team opened two new trade accounts and ran a successful spring promotion. "
        "Their average order value also increased, mainly because customers added accessories to larger orders."
    )
    d.h2(f"Concerns in the {worst} Region")
    d.para(
        f"In the {worst} region, two long-standing customers reduced their orders after moving to a cheaper "
        "competitor. The regional manager has already arranged review meetings with both of them."
    )
    d.h1("Recommendations")
    pool = [
        f"Share the {best} promotion plan with every regional team before the next quarter starts.",
        "Offer a small volume discount to customers who order every month.",
        "Hire two temporary warehouse staff for the busy season.",
        "Review the delivery times promised on the website.",
        f"Visit the three largest accounts in the {worst} region in person.",
        "Publish a short monthly sales dashboard for all managers.",
        "Test a free delivery threshold for online orders.",
    ]
    d.bullets(rng.sample(pool, 4))
    d.h1("Next Steps")
    d.para(
        f"The commercial team will present a detailed plan at the board meeting in {MONTHS[min(quarter * 3, 11)]}. "
        f"Questions about this report can be sent to {email(author, domain_of(company))}."
    )
    return d


# ---------------------------------------------------------------------------------------------------------------
# Letters: the variant picks the situation.

LETTER_SITUATIONS = {
    "delivery": {
        "subject": "Delayed delivery of order {ref}",
        "describe": "a formal business letter from a supplier apologising to a customer for a delayed delivery",
        "body": [
            "Thank you for your order {ref}, which we received on {date_prev}. I am writing to apologise because "
            "part of the order will reach you later than we promised.",
            "A fault at our packing centre stopped outgoing deliveries for four days last week. The fault has been "
            "repaired, but we are still working through the orders that were waiting. The remaining items from your "
            "order will be sent on {date_next} and should arrive within two working days.",
            "To make up for the inconvenience, we have refunded the delivery charge of {fee} to your account and "
            "added a ten percent discount to your next order. You do not need to do anything to receive either of "
            "these.",
            "If the new delivery date causes a problem for your business, please call me directly on {phone} and I "
            "will look at what else we can do.",
        ],
    },
    "repair": {
        "subject": "Request for repairs at {street}",
        "describe": "a formal letter from a tenant to a letting agency asking for repairs to a rented flat",
        "body": [
            "I am writing about the flat at {street}, which I have rented through your agency since {date_prev}. "
            "Several repairs are now needed, and I would be grateful if you could arrange them soon.",
            "The kitchen window no longer closes fully, so cold air and rain come in during storms. The extractor "
            "fan in the bathroom has stopped working, and there is a damp patch spreading across the ceiling above "
            "the bath.",
            "I first reported the window by telephone several weeks ago, but no one has visited yet. I am at home "
            "on most weekday mornings and can give access to a contractor at short notice.",
            "Please could you confirm by {date_next} when the work will be done. You can reach me on {phone} or by "
            "replying to this letter.",
        ],
    },
    "offer": {
        "subject": "Offer of employment",
        "describe": "a formal letter from an employer offering a job to a successful candidate, with start date and salary",
        "body": [
            "Thank you for meeting the interview panel on {date_prev}. I am delighted to offer you the position of "
            "project coordinator at {company}.",
            "Your annual salary will be {fee}, paid monthly, and you will be entitled to twenty-five days of holiday "
            "in addition to public holidays. We would like you to start on {date_next}, subject to two satisfactory "
            "references.",
            "Your first week will include an introduction to the team, a tour of our sites and training on the "
            "systems you will use every day. Your manager will send you a detailed timetable before you start.",
            "Please confirm that you accept this offer by signing and returning the enclosed copy of your contract. "
            "If you have any questions, you can call me on {phone}.",
        ],
    },
}


def build_letter(rng: random.Random, variant: str) -> Draft:
    situation = LETTER_SITUATIONS[variant]
    company = rng.choice(MAKERS if variant == "delivery" else COMPANIES)
    sender, recipient = people(rng, 2)
    sender_street, sender_town = address(rng)
    recipient_street, recipient_town = address(rng)
    sent = date(rng)
    slots = {
        "ref": f"{rng.choice('ABCDEFGH')}{rng.randint(10000, 99999)}",
        "date_prev": long_date(sent - dt.timedelta(days=rng.randint(20, 300))),
        "date_next": long_date(sent + dt.timedelta(days=rng.randint(7, 30))),
        "fee": money(rng.choice([12.5, 18.0, 24.95]) if variant == "delivery" else rng.randint(28, 46) * 1000),
        "phone": f"0{rng.randint(1100, 1999)} {rng.randint(100000, 999999)}",
        "street": f"{sender_street}, {sender_town.split()[0]}",  # the tenant's flat, used by "repair"
        "company": company,
    }
    d = Draft(
        description=situation["describe"][0].upper() + situation["describe"][1:] + ", with addresses, date, "
        "subject line, salutation and closing."
    )
    if variant == "repair":
        d.lines([sender, sender_street, sender_town])
    else:
        d.lines([company, sender_street, sender_town])
    d.para(long_date(sent))
    if variant == "repair":
        d.lines([f"{recipient}, Lettings Manager", rng.choice(LETTING_AGENTS), recipient_street, recipient_town])
    else:
        d.lines([recipient, recipient_street, recipient_town])
    d.para(f"Dear {recipient},")
    d.para(situation["subject"].format(**slots), "Heading 2")
    for text in situation["body"]:
        d.para(text.format(**slots))
    d.para(rng.choice(["Yours sincerely,", "Kind regards,", "Yours faithfully,"]))
    d.para(sender)
    if variant != "repair":
        d.para(rng.choice(["Customer Services Manager", "Head of Operations", "Human Resources Director"]))
    return d


# ---------------------------------------------------------------------------------------------------------------
# Meeting agenda and minutes.

ORGANISATIONS = [
    "Elm Park Residents Association", "Millbrook Village Society", "Southfields Community Group",
    "Canal Quarter Neighbours", "Hillview School Parents Council", "Castle Street Library Friends",
]
AGENDA_ITEMS = [
    "Welcome and apologies", "Minutes of the last meeting", "Treasurer's report", "Summer fair planning",
    "Repairs to the community hall", "New membership fees", "Website and newsletter update",
    "Road safety campaign", "Volunteer recruitment", "Any other business", "Date of next meeting",
]


def build_agenda(rng: random.Random) -> Draft:
    org = rng.choice(ORGANISATIONS)
    when = date(rng)
    chair, *attendees = people(rng, 7)
    d = Draft(
        description=f"A meeting agenda for the {org} with date and venue details, a numbered list of agenda "
        "items and a list of attendees."
    )
    d.title(f"Agenda: {org} Committee Meeting")
    d.para(f"Date: {weekday_date(when)}")
    d.para(f"Time: {rng.choice(['6.30 pm', '7.00 pm', '7.30 pm'])}")
    d.para(f"Venue: {rng.choice(['Room 2, Community Centre', 'The Old School Hall', 'Upstairs at the Red Lion'])}")
    d.para(f"Chair: {chair}")
    d.h1("Agenda Items")
    middle = rng.sample(AGENDA_ITEMS[2:9], 4)
    d.numbered(AGENDA_ITEMS[:2] + middle + AGENDA_ITEMS[9:])
    d.h1("Attendees")
    d.sortable_lines(attendees, rng)
    d.h1("Before the Meeting")
    d.para(
        "Please read the treasurer's report, which was sent by email last week, and bring any questions with you. "
        f"If you cannot attend, send your apologies to {chair} by noon on the day of the meeting."
    )
    return d


DISCUSSION_POOL = {
    "Budget": "The treasurer reported a surplus of {surplus} for the year so far. Members agreed to keep half in "
    "reserve and to use the rest for small repairs.",
    "Summer Fair": "Planning for the summer fair is on schedule. Eleven stalls have been booked, and the committee "
    "is still looking for someone to run the raffle.",
    "Hall Repairs": "Two quotes have been received for fixing the hall roof. The lower quote was {quote}, but the "
    "contractor cannot start until the autumn.",
    "Membership": "Membership has grown to {members} households. The new online form has made joining much easier, "
    "especially for younger residents.",
    "Newsletter": "The editor asked for more articles from members. The next issue will include a page about local "
    "walks and a short history of the area.",
    "Parking": "Residents raised concerns about parking near the school gates. The council will be asked to review "
    "the yellow lines in the spring.",
}


def build_minutes(rng: random.Random) -> Draft:
    org = rng.choice(ORGANISATIONS)
    when = date(rng)
    present = people(rng, 6)
    absent = person(rng)
    topics = rng.sample(sorted(DISCUSSION_POOL), 3)
    slots = {"surplus": money(rng.randint(8, 30) * 100), "quote": money(rng.randint(31, 60) * 100),
             "members": rng.randint(120, 340)}
    d = Draft(
        description=f"Minutes of a committee meeting of the {org}, with attendees, discussion notes under "
        "headings, a numbered list of decisions and a table of action items."
    )
    d.title(f"Minutes of the {org} Committee Meeting")
    d.para(f"Held on {weekday_date(when)} at {rng.choice(['7.00 pm', '7.30 pm'])} in the community hall.")
    d.h1("Present")
    d.sortable_lines(present, rng)
    d.h1("Apologies")
    d.para(f"Apologies were received from {absent}.")
    d.h1("Discussion")
    for topic in topics:
        d.h2(topic)
        d.para(DISCUSSION_POOL[topic].format(**slots))
    d.h1("Decisions")
    decisions = [
        "The minutes of the previous meeting were approved without changes.",
        "The committee will accept the lower quote for the roof repairs.",
        "Membership fees will stay the same for another year.",
        "A working group will plan the autumn litter pick.",
        "The committee will write to the council about parking.",
    ]
    d.numbered(decisions[:1] + rng.sample(decisions[1:], 3))
    d.h1("Action Items")
    owners = rng.sample(present, 4)
    tasks = rng.sample(
        [
            "Book the hall for the fair", "Ask three firms for quotes", "Update the website", "Write to the council",
            "Order new chairs", "Collect raffle prizes", "Draft the next newsletter",
        ],
        4,
    )
    rows = [["Action", "Owner", "Due date"]]
    for task, owner in zip(tasks, owners):
        rows.append([task, owner, long_date(when + dt.timedelta(days=rng.randint(7, 40)))])
    d.table(rows)
    d.para(f"The next meeting will be held on {weekday_date(when + dt.timedelta(days=28))}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Multi-page essays. Each section is a pool of sentences read in order; a seed drops a few and splits the rest
# into paragraphs, so the essay stays coherent.

ESSAYS = {
    "libraries": {
        "title": "The Quiet Revolution of the Public Library",
        "describe": "A multi-page essay on the history and future of public libraries, with an introduction, "
        "headed sections, a block quotation and a conclusion.",
        "intro": [
            "Few public institutions are as widely loved and as often overlooked as the local library.",
            "Most people can remember the first library card they owned, the smell of old paper and the strict rule of silence at the front desk.",
            "Yet the library of today has changed so much that its founders would hardly recognise it.",
            "It lends laptops as well as novels, hosts coding clubs and job fairs, and offers a warm room to anyone who needs one.",
            "This essay looks at where public libraries came from, how they have adapted, and why they still matter.",
        ],
        "sections": {
            "Beginnings": [
                "The idea that books should be free to borrow is surprisingly recent.",
                "For most of history, books were expensive objects kept in private collections or behind the walls of monasteries and universities.",
                "Subscription libraries appeared in the eighteenth century, but members paid a yearly fee that ordinary workers could not afford.",
                "Reformers in the nineteenth century argued that a nation of readers would be healthier, safer and more productive.",
                "Laws passed in Britain and the United States around 1850 finally allowed towns to raise local taxes for free libraries.",
                "Progress was slow at first, because many councils doubted that working people would use them.",
                "The doubters were proved wrong almost immediately, as reading rooms filled with clerks, apprentices and factory hands.",
                "Wealthy donors then paid for hundreds of grand buildings, many of which are still in use.",
                "These buildings were designed to impress, with high ceilings, stone staircases and carved names above the door.",
                "Their message was clear: knowledge belonged to everyone, not only to those who could pay for it.",
                "Early librarians were nevertheless cautious about what they offered.",
                "Fiction was often treated with suspicion, and some committees refused to stock novels at all.",
                "Readers usually had to ask a clerk to fetch a book, because open shelves were thought to encourage theft.",
                "It took decades before visitors were trusted to browse freely and choose for themselves.",
                "That change, small as it sounds, turned the library from a storehouse into a place of discovery.",
                "By the middle of the twentieth century, almost every town had a branch within walking distance of most homes.",
            ],
            "A Room for Everyone": [
                "A library is one of the last indoor spaces where no one is expected to buy anything.",
                "That simple fact explains much of its value in a modern town centre.",
                "Students come to revise in a quiet corner, and parents bring toddlers to rhyme time on weekday mornings.",
                "Older residents read the newspapers, meet friends and ask for help with forms they find confusing.",
                "People without a home often rely on the library for warmth, a clean toilet and a place to charge a phone.",
                "Librarians have quietly become advisers on housing, benefits, health and employment.",
                "Few of them trained for this role, yet many say it is now the most important part of their job.",
                "The building itself has changed to match these new uses.",
                "Rows of tall shelves have been replaced by movable furniture, meeting rooms and bright areas for children.",
                "Some branches share their space with health clinics, council offices or community cafes.",
                "Critics worry that the library is losing its focus on books and reading.",
                "Supporters answer that reading has always been a means to an end, and that the end is an informed public.",
                "In a period of lonely high streets and closing shops, a lively library can hold a neighbourhood together.",
                "Its doors are open to the retired engineer and the teenage poet alike.",
                "No membership fee, dress code or test of worth is required to walk inside.",
                "That openness is easy to take for granted until a branch closes and it disappears.",
            ],
            "The Digital Shift": [
                "When the internet arrived in homes, many commentators predicted the end of the public library.",
                "Why would anyone visit a building when every fact could be found on a screen?",
                "The prediction turned out to be wrong, but the internet did change what libraries do.",
                "Public computers became some of the most heavily used services in almost every branch.",
                "Job applications, benefit claims and tax returns moved online, and many people had no other way to reach them.",
                "Libraries began lending e-books and audiobooks, often through apps that work on any phone.",
                "Borrowing digital books raised new problems, because publishers charge libraries far more than ordinary buyers.",
                "Some licences expire after a fixed number of loans, which forces libraries to buy the same title again and again.",
                "Librarians have also taken on the task of teaching digital skills.",
                "Classes cover everything from sending an email to spotting a fake news story.",
                "Makerspaces with 3D printers, sewing machines and recording studios now appear in larger branches.",
                "These rooms continue an old tradition: giving people access to tools they could not afford on their own.",
                "At the same time, the demand for printed books has remained stronger than many expected.",
                "Children's picture books in particular are borrowed in huge numbers every week.",
                "The digital library has not replaced the physical one; it has simply joined it.",
                "Most readers move easily between the two, choosing whichever suits the moment.",
            ],
            "Children and Young Readers": [
                "For many children, the library is the first place where they choose something entirely for themselves.",
                "A toddler pulling a picture book from a low box is making a small but real decision.",
                "Research on early reading suggests that children who are read to at home start school with a clear advantage.",
                "Families who cannot afford many books rely on the library to close that gap.",
                "Summer reading challenges encourage pupils to keep reading during the long school holidays.",
                "Teachers often notice that children who took part return to school more confident and more fluent.",
                "Homework clubs give older pupils a quiet table, a computer and an adult who can help.",
                "Teenagers are harder to attract, and many branches struggle to keep them coming after the age of twelve.",
                "The most successful libraries give young people a space of their own and a say in how it is run.",
                "Some invite teenagers to choose new stock, plan events or review books for the library website.",
                "Gaming nights, film clubs and creative writing groups have all been used to bring young people through the door.",
                "Once inside, many discover that the library offers far more than they expected.",
                "Children's librarians are skilled at matching a reluctant reader with exactly the right story.",
                "A single good recommendation can turn a child who hates reading into one who cannot stop.",
                "Those children grow into adults who borrow books for their own children in turn.",
                "In this way, each generation of readers helps to create the next.",
            ],
            "The Years Ahead": [
                "The greatest threat to public libraries today is not technology but money.",
                "Local councils facing tight budgets often see libraries as an easy place to save.",
                "Opening hours have been cut in many towns, and some branches now rely entirely on volunteers.",
                "Volunteers bring energy and local knowledge, but they cannot always replace trained staff.",
                "Campaigns to save threatened branches have drawn crowds that surprise local politicians.",
                "These campaigns show that people value their libraries even when they rarely use them.",
                "Some councils have tried new models, such as running libraries through charities or community trusts.",
                "Others have joined services across several towns to share the cost of books and systems.",
                "There is no single answer that will work in every place.",
                "What matters most is that a library stays free, open and close to the people it serves.",
                "The next generation of branches may look very different from the stone halls of the past.",
                "They may be smaller, open longer hours and share their space with other services.",
                "Some will be housed in shopping centres, railway stations or converted shops.",
                "Wherever they are, they will still need people who can guide a visitor to the right answer.",
                "The library has survived many predictions of its death, and it has grown stronger each time.",
                "Its future depends less on technology than on whether communities continue to insist on having one.",
            ],
        },
        "quote": "A library is not a luxury but one of the necessities of life, and a town without one is poorer in ways that no budget can measure.",
        "conclusion": [
            "The public library began as a bold experiment in sharing knowledge.",
            "It has since become a living room, a classroom, an office and a refuge for millions of people.",
            "Its methods have changed with every new technology, but its purpose has stayed remarkably constant.",
            "If we want towns where everyone can learn, meet and take part, the library remains one of the best tools we have.",
            "It deserves to be defended not out of nostalgia but because it still works.",
        ],
    },
    "rivers": {
        "title": "Rivers and the Cities Built Beside Them",
        "describe": "A multi-page essay about how rivers shaped the growth of cities, with headed sections, "
        "a block quotation and a conclusion.",
        "intro": [
            "Look at a map of almost any old city and you will find a river running through its heart.",
            "This is no accident, because rivers offered early settlers water, food, transport and protection.",
            "Over the centuries, cities used their rivers in many different ways, and sometimes abused them badly.",
            "Today many of those same cities are trying to repair the damage and rediscover their waterfronts.",
            "This essay follows that long relationship from the first river towns to the restored riverbanks of today.",
        ],
        "sections": {
            "Why Settlements Began at the Water": [
                "The earliest farming villages grew up along the great river valleys of the ancient world.",
                "Regular floods left behind rich soil that made farming far easier than on dry land.",
                "Rivers also provided fresh water for drinking, cooking and watering animals.",
                "Fish and birds added protein to a diet that was otherwise based on grain.",
                "A river could be crossed at only a few shallow points, and those fords became natural meeting places.",
                "Markets grew up at the crossings, and some of those markets grew into towns.",
                "Many place names still remember the ford or bridge that first brought travellers together.",
                "A bend in a river could also protect a settlement on several sides.",
                "Castles and walled towns often used the water as a ready-made moat.",
                "Boats could carry heavy goods much more cheaply than carts on poor roads.",
                "A town on a navigable river was therefore connected to distant markets and to the sea.",
                "Timber, stone, wool and grain moved downstream, while wine, salt and spices moved up.",
                "Merchants built warehouses and quays close to the water to save time and labour.",
                "The wealth of many medieval cities depended on control of a single stretch of river.",
                "Arguments over tolls and fishing rights could lead to long and bitter disputes between neighbours.",
                "In short, the river was the road, the larder and the wall of the early city.",
            ],
            "The Working River": [
                "The industrial age turned rivers into machines.",
                "Water wheels powered mills for grinding corn, spinning cotton and hammering iron.",
                "Factories crowded along the banks because they needed water for power, cooling and washing.",
                "Canals linked rivers together into networks that carried coal and raw materials across whole countries.",
                "Docks expanded rapidly as trade grew, and thousands of workers lived in streets close to the quays.",
                "The river became busier than at any time in its history.",
                "It also became dirtier than ever before.",
                "Waste from factories, tanneries and slaughterhouses poured straight into the water.",
                "Growing cities emptied their sewers into the same river that supplied their drinking water.",
                "Outbreaks of cholera killed tens of thousands of people before the link with dirty water was understood.",
                "In one famous summer, the smell from a polluted river was so strong that parliament could barely sit.",
                "Such crises finally pushed governments to build proper sewers and treatment works.",
                "Engineers raised embankments that narrowed the river and hid new pipes and roads beneath them.",
                "These works saved many lives, but they also cut people off from the water's edge.",
                "Fish disappeared from many rivers, and some stretches were declared biologically dead.",
                "For a century, the working river was valued for what it carried rather than for what it was.",
            ],
            "Turning Away from the Water": [
                "In the second half of the twentieth century, many riverside industries closed or moved away.",
                "Shipping moved to large container ports near the coast, and the old docks fell silent.",
                "Warehouses were left empty, and riverbanks became a tangle of fences and derelict land.",
                "New roads were often built along the water because the land there was cheap and flat.",
                "Fast traffic made it difficult and unpleasant to reach the river on foot.",
                "Some small rivers were buried completely in culverts to make room for car parks and buildings.",
                "Residents in many cities grew up with little idea that a river flowed beneath their streets.",
                "Flood defences were designed by engineers with little thought for how they looked or felt.",
                "Concrete walls kept the water out but also kept people away.",
                "The river came to be seen as a hazard to be controlled rather than a place to enjoy.",
                "There were exceptions, of course, in cities that kept their promenades and riverside parks.",
                "Yet in most places the waterfront was where the city turned its back.",
                "This neglect had a hidden benefit, because unused land could later be reclaimed.",
                "Abandoned wharves and yards would become the raw material for a new kind of waterfront.",
                "Meanwhile, tighter rules on pollution slowly began to make the water itself cleaner.",
                "By the end of the century, the stage was set for a change of heart.",
            ],
            "Bridges and Crossings": [
                "Where a river divided a city, the bridges that joined its two halves took on special importance.",
                "For centuries, many cities had only one bridge, and every cart, traveller and herd of cattle had to use it.",
                "Early bridges were often lined with houses and shops, turning the crossing itself into a busy street.",
                "Tolls collected from travellers paid for repairs and sometimes made their owners very rich.",
                "A broken bridge could cut a city in two for months and ruin the traders on the far side.",
                "The arrival of iron and later steel allowed engineers to build longer and lighter spans.",
                "Railway bridges carried trains high above the water so that tall ships could still pass beneath.",
                "Some bridges were designed to lift or swing open, stopping road traffic whenever a ship approached.",
                "New bridges often shifted the centre of a city, as shops and offices followed the flow of people.",
                "Older districts near a disused crossing could decline quickly once the traffic moved elsewhere.",
                "Tunnels offered another way across, though they were costly and often disliked by travellers.",
                "In recent years, many cities have built footbridges that carry only walkers and cyclists.",
                "These light crossings are cheap compared with road bridges, yet they can change daily habits dramatically.",
                "A short walk across the water replaces a long detour, and the far bank suddenly feels close.",
                "Famous bridges have also become symbols of their cities, printed on postcards and in guidebooks.",
                "They remind residents that the river is something to cross and enjoy, not only an obstacle.",
            ],
            "Returning to the River": [
                "Over the last forty years, cities across the world have rediscovered their rivers.",
                "Old warehouses have become flats, offices, museums and galleries.",
                "Riverside roads have been narrowed or moved to make space for walking and cycling paths.",
                "Some buried rivers have even been opened up again, a process known as daylighting.",
                "Where a culvert once ran under a car park, there may now be a stream with trees and benches.",
                "Cleaner water has brought back fish, otters and kingfishers to places where they had vanished.",
                "Swimming in city rivers, once unthinkable, has returned to several European capitals.",
                "Designers now talk about making room for the river rather than fighting it.",
                "Parks that can flood safely in winter protect homes downstream while offering green space in summer.",
                "These schemes recognise that climate change will bring heavier rain and more frequent floods.",
                "Waterfront renewal has its critics, who point out that new flats are often too expensive for local people.",
                "Long-standing communities can be pushed out by the very improvements they campaigned for.",
                "The best projects involve residents from the start and keep the riverbank open to everyone.",
                "Boats are also returning, carrying commuters and tourists instead of coal and timber.",
                "The river is no longer only a route for goods but a place where city life happens.",
                "In many ways, cities are rediscovering what their first settlers already knew.",
            ],
        },
        "quote": "A city that turns its face to the river gains a park, a highway and a mirror, all at once, and a city that turns its back loses all three.",
        "conclusion": [
            "Rivers gave cities their first reason to exist.",
            "They carried the trade that made those cities rich and suffered the pollution that made them ill.",
            "For a time, many cities treated their rivers as little more than drains and obstacles.",
            "The current return to the waterfront shows how much has been learned since then.",
            "Caring for a river, it turns out, is one of the best ways to care for a city.",
        ],
    },
}


def build_essay(rng: random.Random, variant: str) -> Draft:
    essay = ESSAYS[variant]
    d = Draft(description=essay["describe"])
    d.title(essay["title"])
    d.para(f"An essay by {person(rng)}")
    d.para(" ".join(essay["intro"]))
    sections = list(essay["sections"].items())
    quote_after = rng.randrange(1, len(sections))
    for number, (heading, pool) in enumerate(sections):
        d.h1(heading)
        kept = pick_in_order(rng, pool, rng.randint(15, 16))
        for text in split_into(kept, 3):
            d.para(text)
        if number == quote_after:
            d.quote(essay["quote"])
    d.h1("Conclusion")
    d.para(" ".join(essay["conclusion"]))
    return d


# ---------------------------------------------------------------------------------------------------------------
# CV.

JOBS = [
    ("Senior Data Analyst", ["Built monthly reporting dashboards used by forty managers.",
                             "Cut the time to produce the quarterly forecast from five days to two.",
                             "Trained six junior analysts in SQL and spreadsheet modelling."]),
    ("Project Coordinator", ["Planned and tracked a relocation of two hundred staff to a new office.",
                             "Managed a budget of three hundred thousand dollars across nine suppliers.",
                             "Introduced weekly status reports that the board later adopted company-wide."]),
    ("Marketing Executive", ["Ran email campaigns that doubled the number of repeat customers.",
                             "Wrote and edited copy for the website, brochures and trade shows.",
                             "Organised a product launch event attended by three hundred guests."]),
    ("Customer Support Lead", ["Led a team of eight advisers handling phone, chat and email requests.",
                               "Reduced the average response time from two days to four hours.",
                               "Wrote the help centre articles that now answer most common questions."]),
]
TOOLS = ["Excel", "SQL", "Python", "Tableau", "Jira", "Figma", "Trello", "Salesforce", "WordPress", "Canva"]


def build_cv(rng: random.Random) -> Draft:
    name = person(rng)
    street, town = address(rng)
    (role_now, duties_now), (role_before, duties_before) = rng.sample(JOBS, 2)
    company_now, company_before = rng.sample(COMPANIES, 2)
    start_now = rng.randint(2019, 2022)
    start_before = start_now - rng.randint(3, 5)
    d = Draft(
        description=f"A curriculum vitae (CV) for {name}, a {role_now.lower()}, with contact details, a profile, "
        "work experience with bullet points, education and a list of software tools."
    )
    d.title(name)
    d.para(f"{street}, {town}")
    d.para(f"Phone: 07{rng.randint(100, 999)} {rng.randint(100000, 999999)}")
    d.para(f"Email: {email(name, 'mailbox.example.org')}")
    d.h1("Profile")
    d.para(
        f"Organised and reliable {role_now.lower()} with more than {2025 - start_before} years of experience in "
        "busy commercial teams. I enjoy turning messy information into clear plans, and I work well with "
        "colleagues at every level of an organisation."
    )
    d.h1("Experience")
    d.h2(f"{role_now}, {company_now} ({start_now} to present)")
    d.bullets(duties_now)
    d.h2(f"{role_before}, {company_before} ({start_before} to {start_now})")
    d.bullets(duties_before)
    d.h1("Education")
    university = rng.choice(["University of Leeds", "University of Exeter", "Cardiff University", "University of York"])
    subject = rng.choice(["Economics", "Business Management", "Geography", "Mathematics", "English Literature"])
    d.para(f"BA (Hons) {subject}, {university}, {start_before - 3} to {start_before}")
    d.h1("Software Tools")
    d.sortable_lines(rng.sample(TOOLS, 6), rng)
    d.h1("Interests")
    d.para(
        rng.choice(
            [
                "Outside work I play in a community orchestra and volunteer at a local food bank.",
                "I enjoy long-distance walking, baking bread and coaching a junior football team.",
                "I am learning Spanish and spend most weekends cycling or photographing old buildings.",
            ]
        )
    )
    d.para("References are available on request.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Recipe.

RECIPES = {
    "lentil soup": {
        "title": "Red Lentil and Carrot Soup",
        "intro": "This thick, warming soup is cheap to make and ready in under forty minutes. It freezes well, so "
        "it is worth making a double batch for busy weeknights.",
        "serves": "Serves 4. Preparation 10 minutes. Cooking 30 minutes.",
        "ingredients": ["1 tablespoon olive oil", "1 large onion, chopped", "3 carrots, grated", "2 cloves garlic, crushed",
                        "1 teaspoon ground cumin", "200 g red lentils, rinsed", "1.2 litres vegetable stock",
                        "Juice of half a lemon"],
        "steps": ["Heat the oil in a large pan and fry the onion gently for five minutes until soft.",
                  "Add the carrots, garlic and cumin and cook for two more minutes, stirring often.",
                  "Stir in the lentils and pour over the stock, then bring the pan to the boil.",
                  "Lower the heat, cover and simmer for twenty minutes until the lentils are very soft.",
                  "Blend until smooth, add the lemon juice and season with salt and pepper to taste."],
        "tip": "For a richer soup, stir in a spoonful of yoghurt just before serving and scatter over fresh coriander.",
    },
    "lemon cake": {
        "title": "Lemon Drizzle Cake",
        "intro": "A light sponge soaked in sharp lemon syrup, this cake is a favourite at village fetes and office "
        "birthdays. It keeps for three days in an airtight tin.",
        "serves": "Makes 10 slices. Preparation 15 minutes. Baking 45 minutes.",
        "ingredients": ["225 g softened butter", "225 g caster sugar", "4 eggs", "275 g self-raising flour",
                        "Finely grated zest of 2 lemons", "2 tablespoons milk", "Juice of 2 lemons",
                        "85 g granulated sugar"],
        "steps": ["Heat the oven to 180 C and line a large loaf tin with baking paper.",
                  "Beat the butter and caster sugar together until pale and fluffy.",
                  "Add the eggs one at a time, then fold in the flour, lemon zest and milk.",
                  "Spoon the mixture into the tin and bake for 45 minutes until a skewer comes out clean.",
                  "Mix the lemon juice with the granulated sugar and pour it over the warm cake.",
                  "Leave the cake in the tin until completely cool before slicing."],
        "tip": "Prick the warm cake all over with a fork before adding the drizzle so that the syrup soaks right through.",
    },
    "vegetable curry": {
        "title": "Chickpea and Spinach Curry",
        "intro": "A mild, family-friendly curry made mostly from store-cupboard ingredients. Serve it with rice, "
        "warm flatbreads or a simple cucumber salad.",
        "serves": "Serves 4. Preparation 15 minutes. Cooking 25 minutes.",
        "ingredients": ["2 tablespoons sunflower oil", "1 onion, finely sliced", "1 thumb-sized piece of ginger, grated",
                        "2 tablespoons mild curry paste", "400 g tin chopped tomatoes", "400 g tin chickpeas, drained",
                        "200 ml coconut milk", "150 g baby spinach"],
        "steps": ["Fry the onion in the oil over a medium heat until golden, about eight minutes.",
                  "Add the ginger and curry paste and cook for one minute until fragrant.",
                  "Tip in the tomatoes, chickpeas and coconut milk and simmer for fifteen minutes.",
                  "Stir in the spinach a handful at a time until it has wilted.",
                  "Check the seasoning and serve straight away."],
        "tip": "The curry tastes even better the next day, once the spices have had time to settle.",
    },
}


def build_recipe(rng: random.Random, variant: str) -> Draft:
    recipe = RECIPES[variant]
    d = Draft(
        description=f"A recipe for {recipe['title'].lower()} with a short introduction, a bulleted ingredients "
        "list, numbered method steps and a cook's tip."
    )
    d.title(recipe["title"])
    d.para(recipe["intro"])
    d.para(recipe["serves"])
    d.h1("Ingredients")
    d.bullets(recipe["ingredients"])
    d.h1("Method")
    d.numbered(recipe["steps"])
    d.h1("Cook's Tip")
    d.para(recipe["tip"])
    d.para(f"Recipe contributed by {person(rng)}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Newsletter.

NEWS_STORIES = [
    ("New Benches in Victoria Park", "Six new benches made from recycled plastic were installed along the main path "
     "last month. The project was paid for by the spring plant sale and a grant from the town council."),
    ("Litter Pick a Great Success", "More than forty volunteers collected ninety bags of rubbish from the canal "
     "towpath in a single morning. Thank you to everyone who brought gloves, flasks and enthusiasm."),
    ("Library Opening Hours", "From next month the branch library will open until eight on Thursday evenings. "
     "The longer hours are a trial, so please use them if you can."),
    ("Community Orchard Planted", "Twelve apple and pear trees have been planted on the old bowling green. "
     "The first fruit is expected in about three years, and everyone will be welcome to pick it."),
    ("Safer Crossing on Station Road", "After two years of campaigning, a zebra crossing will be built outside the "
     "primary school during the summer holidays."),
]
EVENTS = ["Quiz night", "Open garden day", "Repair cafe", "Book swap", "Family bike ride", "Beach clean",
          "Plant sale", "Craft fair"]
VENUES = ["Community Centre", "St Mary's Church Hall", "Victoria Park", "The Old School Hall", "Canal Basin"]


def build_newsletter(rng: random.Random) -> Draft:
    org = rng.choice(ORGANISATIONS)
    month = rng.randrange(12)
    year = rng.choice([2024, 2025])
    editor = person(rng)
    stories = rng.sample(NEWS_STORIES, 3)
    d = Draft(
        description=f"A community newsletter for the {org} with an editor's letter, short news stories under "
        "headings, a member's quotation, a table of upcoming events and a volunteer rota."
    )
    d.title(f"{org} Newsletter, {MONTHS[month]} {year}")
    d.h1("From the Editor")
    d.para(
        f"Welcome to the {MONTHS[month]} newsletter. It has been a busy few weeks, and there is plenty of good news "
        "to share. As always, we would love to hear your ideas for future issues."
    )
    d.h1("Community News")
    for heading, text in stories[:2]:
        d.h2(heading)
        d.para(text)
    d.quote(
        rng.choice(
            [
                "I moved here only last year, and I have never felt so welcome anywhere. It really is a neighbourhood where people look out for each other.",
                "Volunteering on Saturday mornings has become the best part of my week. You meet people you would never otherwise talk to.",
            ]
        )
    )
    d.h2(stories[2][0])
    d.para(stories[2][1])
    d.h1("Upcoming Events")
    rows = [["Date", "Event", "Venue"]]
    start = dt.date(year, month + 1, rng.randint(1, 6))
    for i, event in enumerate(rng.sample(EVENTS, 4)):
        rows.append([long_date(start + dt.timedelta(days=7 * i + rng.randint(0, 3))), event, rng.choice(VENUES)])
    d.table(rows)
    d.para("All events are free unless stated otherwise, and children are welcome at every one of them.")
    d.h1("Volunteer Rota")
    d.para("The following members have offered to help at this month's events:")
    d.sortable_lines(people(rng, 5), rng)
    d.para(f"Edited by {editor}. Contributions for the next issue are due by the twentieth of the month.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Price list with tab-separated lines.

SHOPS = {
    "bakery": ("Bakery", [("Sourdough loaf", "800 g", 4.2), ("Seeded rye", "600 g", 3.8), ("Croissant", "each", 1.6),
                         ("Cinnamon bun", "each", 2.1), ("Baguette", "each", 1.9), ("Fruit scone", "each", 1.4),
                         ("Focaccia", "tray", 6.5)]),
    "garden": ("Garden Centre", [("Compost", "40 litres", 6.99), ("Terracotta pot", "30 cm", 12.5),
                                 ("Lavender plant", "2 litre pot", 5.75), ("Bird feeder", "each", 14.0),
                                 ("Seed potatoes", "2 kg", 4.5), ("Watering can", "10 litres", 9.99),
                                 ("Tomato plant", "9 cm pot", 2.25)]),
}


def build_price_list(rng: random.Random, variant: str) -> Draft:
    trade, items = SHOPS[variant]
    owner = rng.choice(SURNAMES)
    shop = f"{owner}'s {trade}" if variant == "bakery" else f"{owner} {trade}"
    chosen = rng.sample(items, 5)
    d = Draft(
        description=f"A price list for {shop}, with an introduction, a block of tab-separated item, size and "
        "price lines, ordering information and bulleted notes."
    )
    d.title(f"{shop} Price List")
    d.para(
        f"Prices below apply from 1 {MONTHS[rng.randrange(12)]} and include tax. {shop} has served the town "
        f"since {rng.randint(1962, 2008)}, and every product is made or grown locally."
    )
    d.h1("Current Prices")
    d.delimited_lines([["Item", "Size", "Price"]] + [[n, s, money(p)] for n, s, p in chosen], "\t")
    d.h1("Ordering")
    d.para(
        "Orders for collection can be placed by phone or in person at least two days in advance. "
        "Large orders for events may need up to a week."
    )
    d.bullets(
        rng.sample(
            [
                "Prices may change without notice when supplier costs rise.",
                "Local delivery is free for orders over forty dollars.",
                "We accept cash and all major cards.",
                "Ask about our loyalty card: the tenth purchase is free.",
                "Seasonal items are available while stocks last.",
            ],
            3,
        )
    )
    return d


# ---------------------------------------------------------------------------------------------------------------
# FAQ.

FAQ_POOL = [
    ("How do I join the bike share scheme?", "Download the app, create an account and add a payment card. You can "
     "unlock your first bike a few minutes later."),
    ("How much does a ride cost?", "The first thirty minutes of every ride cost one dollar. After that, each "
     "extra fifteen minutes costs fifty cents."),
    ("Where can I leave a bike?", "Bikes must be returned to one of the marked docking stations. The map in the app "
     "shows how many free spaces each station has."),
    ("What happens if a bike is damaged?", "Press the repair button on the dock before you undock the bike, or report "
     "the fault in the app. You will not be charged for faults you report."),
    ("Can children use the bikes?", "Riders must be at least sixteen years old. Younger riders can use the family "
     "bikes at the park station when an adult is with them."),
    ("Do I need to wear a helmet?", "Helmets are not required by law, but we strongly recommend them. Discounted "
     "helmets are sold at the central station."),
    ("Are the bikes available at night?", "Yes, the scheme runs every day of the year, day and night. Some stations "
     "in parks close at dusk, and the app marks them clearly."),
    ("How do I close my account?", "Open the settings page in the app and choose close account. Any unused credit "
     "will be returned to your card within five working days."),
]


def build_faq(rng: random.Random) -> Draft:
    town = rng.choice(TOWNS)[0]
    questions = rng.sample(FAQ_POOL, 6)
    d = Draft(
        description=f"A frequently asked questions (FAQ) page for the {town} bike share scheme, with each "
        "question as a heading followed by its answer."
    )
    d.title(f"{town} Bike Share: Frequently Asked Questions")
    d.para(
        f"This page answers the questions we hear most often about the {town} bike share scheme. If your question "
        "is not covered here, our support team is happy to help."
    )
    for question, answer in questions:
        d.h2(question)
        d.para(answer)
    d.para(f"Last updated {long_date(date(rng))}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Technical report with a table and comma-separated readings.

RIVERS = ["Avon", "Wharfe", "Ouse", "Wensum", "Exe", "Taff", "Tay", "Witham"]


def build_lab_report(rng: random.Random) -> Draft:
    river = rng.choice(RIVERS)
    sites = [f"Site {c}" for c in "ABCDE"]
    author = person(rng)
    sampled = date(rng)
    readings = {s: (round(rng.uniform(6.8, 8.4), 1), round(rng.uniform(8.0, 16.5), 1), rng.randint(3, 38)) for s in sites}
    cloudiest = max(sites, key=lambda s: readings[s][2])
    d = Draft(
        description=f"A water quality testing report for the River {river}, with headed sections and "
        "subsections, a results table of measurements and comma-separated raw readings."
    )
    d.title(f"Water Quality Report: River {river}")
    d.para(f"Author: {author}. Samples taken on {long_date(sampled)}.")
    d.h1("Introduction")
    d.para(
        f"This report summarises routine water quality tests carried out at five sites along the River {river}. "
        "The tests are repeated every quarter so that changes can be spotted early."
    )
    d.h1("Method")
    d.h2("Sampling")
    d.para("At each site, three samples were collected from mid-stream at a depth of about thirty centimetres and "
           "stored in clean bottles at four degrees.")
    d.h2("Analysis")
    d.para("Acidity and temperature were measured on site. Turbidity and nitrate were measured in the laboratory "
           "within twenty-four hours of collection.")
    d.h3("Quality Control")
    d.para("One blank sample and one duplicate were analysed with every batch to check for contamination.")
    d.h1("Results")
    d.para("The table shows the average of the three samples taken at each site.")
    rows = [["Site", "pH", "Temperature (C)", "Turbidity (NTU)"]]
    for s in sites:
        ph, temp, turb = readings[s]
        rows.append([s, f"{ph}", f"{temp}", f"{turb}"])
    d.table(rows)
    d.para(f"Turbidity was highest at {cloudiest}, just below the outflow from the farm drainage channel.")
    d.h2("Nitrate Readings")
    d.delimited_lines(
        [["Site", "Time", "Nitrate mg/L"]]
        + [[s, f"{9 + i}:{rng.choice(['05', '20', '35', '50'])}", f"{rng.uniform(1.2, 9.5):.1f}"] for i, s in enumerate(sites)],
        ",",
    )
    d.h1("Conclusions")
    d.bullets(
        [
            f"Water quality along the River {river} remains generally good.",
            f"Turbidity at {cloudiest} should be checked again after heavy rain.",
            "No sample exceeded the legal limit for nitrate.",
        ]
    )
    return d


# ---------------------------------------------------------------------------------------------------------------
# User guide.


def build_user_guide(rng: random.Random) -> Draft:
    brand = rng.choice(["Brewmaster", "Morning Star", "Crema Plus", "Barista One"])
    model = f"{rng.choice(['C', 'S', 'X'])}{rng.randint(2, 9)}00"
    d = Draft(
        description=f"A user guide for the {brand} {model} coffee machine, with setup instructions as numbered "
        "steps, safety bullet points, cleaning subsections and troubleshooting headings."
    )
    d.title(f"Getting Started with Your {brand} {model} Coffee Machine")
    d.para(
        f"Thank you for choosing the {brand} {model}. This guide explains how to set up the machine, make your "
        "first cup and keep the machine in good condition for years to come."
    )
    d.h1("Safety First")
    d.bullets(
        [
            "Always place the machine on a flat, dry surface away from the edge of the counter.",
            "Never open the brewing unit while the machine is switched on.",
            "Keep the power cable away from hot surfaces and water.",
            "Let the steam wand cool down before you clean it.",
        ]
    )
    d.h1("Setting Up")
    d.numbered(
        [
            "Remove all packaging and rinse the water tank with warm water.",
            "Fill the tank to the MAX line with fresh cold water.",
            "Plug in the machine and press the power button once.",
            "Place a large cup under the spout and press the rinse button.",
            "Wait until the rinse cycle stops and the green light stays on.",
        ]
    )
    d.h1("Care and Cleaning")
    d.h2("Daily Cleaning")
    d.para("Empty the drip tray and the coffee grounds container every day, and wipe the steam wand with a damp "
           "cloth after each use.")
    d.h2("Descaling")
    d.para(f"Descale the machine every {rng.choice(['two', 'three'])} months, or sooner if you live in a hard "
           "water area. The descale light will remind you when it is time.")
    d.h3("Choosing a Descaler")
    d.para("Use only liquid descalers made for coffee machines. Vinegar can damage the seals inside the pump.")
    d.h1("Troubleshooting")
    d.h2("The coffee is too weak")
    d.para("Use a finer grind or a little more coffee, and check that the filter holder is locked in place.")
    d.h2("Water leaks under the machine")
    d.para("Check that the drip tray is pushed fully home and that the water tank is seated correctly.")
    d.para(f"For further help, contact {brand} customer care on 0800 {rng.randint(100, 999)} {rng.randint(1000, 9999)}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Office memo.

SUPPLIES = ["Packing tape", "Cardboard boxes", "Marker pens", "Bubble wrap", "Sticky labels", "Cable ties",
            "Storage crates", "Bin bags"]


def build_memo(rng: random.Random) -> Draft:
    company = rng.choice(COMPANIES)
    sender = person(rng)
    when = date(rng)
    move = when + dt.timedelta(days=rng.randint(14, 30))
    d = Draft(
        description=f"An internal office memo at {company} about moving to a new office floor, with To, From, "
        "Date and Subject lines, instructions and a list of packing supplies."
    )
    d.title("Memo")
    d.para("To: All staff")
    d.para(f"From: {sender}, Facilities Manager")
    d.para(f"Date: {long_date(when)}")
    d.para("Subject: Office move to the third floor")
    d.para(
        f"As announced at the staff meeting, our team will move to the third floor on {weekday_date(move)}. "
        "The new space is brighter and has more meeting rooms, and the kitchen has been completely refitted."
    )
    d.para(
        "Please pack the contents of your desk by four o'clock on the day before the move. Label every box with "
        "your name and your new desk number, which you will receive by email next week."
    )
    d.para("The following supplies are available from reception:")
    d.sortable_lines(rng.sample(SUPPLIES, 5), rng)
    d.para(
        "Computers, phones and monitors will be moved by the IT team, so please do not pack them yourself. "
        "Anything left on a desk after the move will be placed in the lost property cupboard."
    )
    d.para(f"Thank you for your help. Any questions can be sent to {email(sender, domain_of(company))}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Product sheet.


def build_product_sheet(rng: random.Random) -> Draft:
    brand = rng.choice(["Aurora", "Everglow", "Summit", "Trailhead"])
    company = rng.choice(OUTDOOR_BRANDS)
    d = Draft(
        description=f"A product information sheet for the {brand} range of rechargeable camping lanterns, with "
        "an overview, a model comparison table, key features, numbered getting-started steps and comma-separated "
        "stock codes."
    )
    d.title(f"{brand} Rechargeable Camping Lanterns")
    d.para(f"Bright, tough and quiet light for tents, sheds and power cuts, from {company}.")
    d.h1("Overview")
    d.para(
        f"The {brand} range includes three lanterns for different needs, from a pocket light for walkers to a "
        "large lantern that can light a whole campsite. Every model charges from a standard USB cable and can "
        "also charge a phone in an emergency."
    )
    d.para("All lanterns are water resistant, survive drops of up to one metre and come with a three year guarantee.")
    d.h1("Model Comparison")
    rows = [["Model", "Brightness", "Battery life", "Weight", "Price"]]
    for name, lumens, hours, grams, price in [
        ("Mini", rng.choice([150, 200]), rng.choice([10, 12]), rng.choice([140, 160]), rng.choice([24.99, 29.99])),
        ("Standard", rng.choice([400, 450]), rng.choice([18, 20]), rng.choice([320, 350]), rng.choice([44.99, 49.99])),
        ("Max", rng.choice([900, 1000]), rng.choice([30, 36]), rng.choice([610, 680]), rng.choice([79.99, 89.99])),
    ]:
        rows.append([f"{brand} {name}", f"{lumens} lumens", f"{hours} hours", f"{grams} g", money(price)])
    d.table(rows)
    d.h1("Key Features")
    d.bullets(
        rng.sample(
            [
                "Warm and cool light settings with a smooth dimmer.",
                "Red night mode that does not disturb other campers.",
                "Folding hook for hanging from a tent roof.",
                "Battery level shown by four small lights.",
                "Magnetic base for fixing to a car or metal shelf.",
            ],
            4,
        )
    )
    d.h1("Getting Started")
    d.numbered(
        [
            "Charge the lantern fully before its first use; this takes about four hours.",
            "Press the power button once to switch on and again to change the light setting.",
            "Hold the power button for two seconds to switch off.",
            "Store the lantern half charged if you will not use it for several months.",
        ]
    )
    d.h1("Stock Codes")
    colours = rng.sample(["Forest green", "Slate grey", "Sunset orange", "Ocean blue"], 3)
    codes = [["Code", "Model", "Colour"]]
    for name in ["Mini", "Standard", "Max"]:
        for colour in rng.sample(colours, 2 if name != "Max" else 1):
            codes.append([f"{brand[:3].upper()}-{name[:3].upper()}-{colour[:2].upper()}{rng.randint(10, 99)}",
                          f"{brand} {name}", colour])
    d.delimited_lines(codes, ",")
    d.para(f"For trade orders, contact the sales team at sales@{domain_of(company)}.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Invoice.

SERVICES = [
    ("Website design, home page and five inner pages", 1, 1450.0), ("Logo refresh and brand guidelines", 1, 680.0),
    ("Copywriting, per page", 6, 85.0), ("Product photography, half day", 2, 320.0),
    ("Hosting and maintenance, monthly", 12, 35.0), ("Printed leaflets, box of 500", 3, 96.0),
    ("Staff training session, two hours", 2, 180.0),
]


def build_invoice(rng: random.Random) -> Draft:
    supplier, client = rng.choice(STUDIOS), rng.choice(COMPANIES)
    street, town = address(rng)
    client_street, client_town = address(rng)
    contact = person(rng)
    issued = date(rng)
    number = f"INV-{issued.year}-{rng.randint(100, 999)}"
    lines = rng.sample(SERVICES, 4)
    d = Draft(
        description=f"An invoice from {supplier} to {client} with billing addresses, a table of services with "
        "quantities and amounts, a tab-separated payment schedule and payment terms."
    )
    d.title("Invoice")
    d.lines([supplier, street, town])
    d.para(f"Invoice number: {number}")
    d.para(f"Date of issue: {long_date(issued)}")
    d.h2("Bill To")
    d.lines([contact, client, client_street, client_town])
    d.h2("Services")
    rows = [["Description", "Quantity", "Unit price", "Amount"]]
    total = 0.0
    for text, qty, price in lines:
        rows.append([text, str(qty), money(price), money(qty * price)])
        total += qty * price
    rows.append(["Total due", "", "", money(total)])
    d.table(rows)
    d.h2("Payment Schedule")
    first = round(total / 2, 2)
    d.delimited_lines(
        [
            ["Instalment", "Due date", "Amount"],
            ["First", long_date(issued + dt.timedelta(days=14)), money(first)],
            ["Second", long_date(issued + dt.timedelta(days=44)), money(round(total - first, 2))],
        ],
        "\t",
    )
    d.h2("Terms")
    d.para(
        "Payment is due within fourteen days of each due date. Please quote the invoice number with your payment. "
        "Late payments may be charged interest at two percent per month."
    )
    d.para("Thank you for your business.")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Press release.


def build_press_release(rng: random.Random) -> Draft:
    company = rng.choice(MAKERS)
    town = rng.choice(TOWNS)[0]
    ceo = person(rng)
    press = person(rng)
    when = date(rng)
    jobs = rng.choice([40, 65, 120])
    d = Draft(
        description=f"A press release announcing that {company} is opening a new site in {town}, with a "
        "headline, dateline, a quotation from the chief executive, bulleted highlights and media contacts."
    )
    d.title(f"{company} to Open New Site in {town}, Creating {jobs} Jobs")
    d.para("FOR IMMEDIATE RELEASE")
    d.para(
        f"{town.upper()}, {long_date(when)}. {company} today announced plans to open a new production and "
        f"training site in {town}. The site will create {jobs} permanent jobs and open its doors in the spring."
    )
    d.para(
        "The company chose the location because of its rail links, its skilled workforce and the support offered "
        "by the local college, which will run an apprenticeship programme on site."
    )
    d.quote(
        f"{town} has exactly the mix of talent and ambition we were looking for. We are proud to be putting down "
        f"roots here, and we intend to hire locally wherever we can, said {ceo}, chief executive of {company}."
    )
    d.para("Highlights of the announcement include:")
    d.bullets(
        rng.sample(
            [
                f"{jobs} permanent jobs, with recruitment starting next month.",
                "Twenty apprenticeships each year in partnership with the local college.",
                "Solar panels supplying most of the site's electricity.",
                "A visitor centre open to schools and community groups.",
                "A new bus stop at the main entrance, funded by the company.",
            ],
            4,
        )
    )
    d.h2(f"About {company}")
    d.para(
        f"Founded in {rng.randint(1975, 2012)}, {company} employs more than {rng.randint(4, 19) * 100} people "
        "across the country and is known for its commitment to training and fair pay."
    )
    d.h2("Media Contact")
    d.lines([press, "Communications Office", f"Email: {email(press, domain_of(company))}"])
    d.para("ENDS")
    return d


# ---------------------------------------------------------------------------------------------------------------
# Event programme.

SESSIONS = [
    "Opening address", "Writing about the places we love", "Poetry in the park", "How to get your first book published",
    "Crime fiction panel", "Children's story hour", "Translating the classics", "Local history walk",
    "Comics and graphic novels", "Closing readings",
]
ROOMS = ["Main Hall", "Garden Room", "Studio", "Library"]


def build_event_programme(rng: random.Random) -> Draft:
    town = rng.choice(TOWNS)[0]
    year = rng.choice([2024, 2025])
    first_day = dt.date(year, rng.choice([5, 6, 7, 9]), rng.randint(1, 20))
    speakers = people(rng, 8)
    sessions = SESSIONS[1:-1]
    rng.shuffle(sessions)
    d = Draft(
        description=f"A two-day programme for the {town} Book Festival, with a timetable table for each day, "
        "a list of speakers and practical information for visitors."
    )
    d.title(f"{town} Book Festival {year}: Programme")
    d.para(
        f"Welcome to the {town} Book Festival. Over two days, authors, poets and illustrators will share their work "
        "in talks, readings and workshops for all ages. Most events are free, but some need a ticket."
    )
    speaker_iter = iter(speakers)
    session_iter = iter(sessions)
    for day, times in ((first_day, ["10.00", "11.30", "14.00", "16.00"]), (first_day + dt.timedelta(days=1),
                                                                          ["10.30", "13.00", "15.00"])):
        d.h1(weekday_date(day))
        rows = [["Time", "Session", "Speaker", "Room"]]
        for i, time in enumerate(times):
            if i == 0 and day == first_day:
                session = SESSIONS[0]
            elif i == len(times) - 1 and day != first_day:
                session = SESSIONS[-1]
            else:
                session = next(session_iter)
            rows.append([time, session, next(speaker_iter), rng.choice(ROOMS)])
        d.table(rows)
        d.para(rng.choice(["Doors open thirty minutes before the first session.",
                           "Lunch is available in the Garden Room cafe from noon."]) if day == first_day
               else "The festival bookshop stays open until six on the final day.")
    d.h1("Speakers")
    d.sortable_lines(rng.sample(speakers[:7], 6), rng)
    d.h1("Practical Information")
    d.bullets(
        [
            "Tickets can be booked online or at the festival box office.",
            "All venues have step-free access and accessible toilets.",
            "Free parking is available at the leisure centre.",
        ]
    )
    d.para(f"The festival is run by volunteers from the {town} Literary Society.")
    return d
