"""The synthetic shop's catalogue: word lists, the category tree, items and planted complements.

Private helper of `fusionrec.data.synthetic`. Every word here is plain ASCII without quotes or
backslashes, so titles and attributes can be joined into JSON without escaping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fusionrec.data.schema import CATEGORY_SEPARATOR, ITEM_SCHEMA, UTC_TIMESTAMP

# The catalogue's columns: all of the item schema's but ``vectors``, which only a shop generated
# with image vectors has (so the default shop's items.parquet stays as it was).
CATALOGUE_SCHEMA = ITEM_SCHEMA.remove(ITEM_SCHEMA.get_field_index("vectors"))

US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class CategorySpec:
    """One leaf category: product types (nouns), variants, a log-normal price and a re-buy cycle."""

    name: str
    nouns: tuple[str, ...]
    variants: tuple[str, ...]
    price_median: float
    price_sigma: float = 0.45
    cycle_days: float | None = None  # set for consumables, re-bought about every `cycle_days`


@dataclass(frozen=True)
class DepartmentSpec:
    """A top-level department: its brands, title adjectives, description sentences and categories."""

    name: str
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    features: tuple[str, ...]
    categories: tuple[CategorySpec, ...]


C = CategorySpec
DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec(
        "Electronics",
        ("Voltix", "Nexa", "Orbix", "Lumio", "Kestrel", "Zentro"),
        ("Pro", "Ultra", "Lite", "Max", "Smart", "Compact"),
        (
            "Two-year warranty included.",
            "Fast USB-C charging.",
            "Sleek aluminium finish.",
            "Energy efficient design.",
            "Works with all major platforms.",
            "Ships in recyclable packaging.",
        ),
        (
            C(
                "Phones",
                ("Smartphone", "5G Phone", "Flip Phone", "Rugged Phone"),
                ("64GB", "128GB", "256GB"),
                420.0,
                0.5,
            ),
            C(
                "Phone Accessories",
                ("Phone Case", "Screen Protector", "Charger", "USB-C Cable"),
                ("Black", "Clear", "Blue", "2-pack"),
                18.0,
                0.4,
            ),
            C(
                "Laptops",
                ("Laptop", "Ultrabook", "Notebook", "2-in-1 Laptop"),
                ("13-inch", "14-inch", "15-inch"),
                850.0,
                0.45,
            ),
            C(
                "Computer Accessories",
                ("Wireless Mouse", "Keyboard", "Laptop Bag", "USB Hub", "Webcam"),
                ("Black", "Grey", "White"),
                32.0,
                0.45,
            ),
            C(
                "Headphones",
                ("Earbuds", "Over-Ear Headphones", "Noise-Cancelling Headphones", "Sports Earphones"),
                ("Black", "White", "Midnight Blue"),
                75.0,
                0.6,
            ),
            C(
                "Cameras",
                ("Mirrorless Camera", "Action Camera", "Compact Camera", "Instant Camera"),
                ("Body Only", "Kit", "Bundle"),
                380.0,
                0.6,
            ),
            C(
                "Storage",
                ("Memory Card", "USB Stick", "External SSD", "Hard Drive"),
                ("64GB", "128GB", "1TB"),
                28.0,
                0.6,
            ),
        ),
    ),
    DepartmentSpec(
        "Home & Kitchen",
        ("Hearthly", "Casa Nova", "Kitchena", "Nestwell", "PureHome", "Brightly"),
        ("Classic", "Modern", "Deluxe", "Essential", "Nordic", "Rustic"),
        (
            "Dishwasher safe.",
            "Made from recycled materials.",
            "Easy to clean.",
            "Built to last for years.",
            "Designed in Copenhagen.",
            "Fits every kitchen.",
        ),
        (
            C(
                "Coffee Machines",
                ("Espresso Machine", "Drip Coffee Maker", "Capsule Machine", "Milk Frother"),
                ("Silver", "Black", "Cream"),
                110.0,
                0.55,
            ),
            C(
                "Cookware",
                ("Frying Pan", "Saucepan", "Wok", "Dutch Oven", "Baking Tray"),
                ("20cm", "24cm", "28cm"),
                42.0,
                0.45,
            ),
            C(
                "Cleaning Supplies",
                ("Dish Soap", "Laundry Detergent", "All-Purpose Cleaner", "Sponges", "Trash Bags"),
                ("500ml", "1L", "Family Pack"),
                6.5,
                0.35,
                cycle_days=35.0,
            ),
            C(
                "Bedding",
                ("Duvet", "Pillow", "Sheet Set", "Throw Blanket"),
                ("Single", "Double", "King"),
                55.0,
                0.45,
            ),
            C(
                "Organisers",
                ("Storage Box", "Jar Set", "Drawer Organiser", "Shelf Basket"),
                ("Small", "Medium", "Large"),
                19.0,
                0.4,
            ),
        ),
    ),
    DepartmentSpec(
        "Food & Drink",
        ("Teaco", "Bean and Leaf", "Harvestly", "Golden Field", "Nordic Pantry", "Sunny Mill"),
        ("Organic", "Fair Trade", "Premium", "Classic", "Wholesome", "Artisan"),
        (
            "Sourced from small farms.",
            "No artificial flavours.",
            "Vegan friendly.",
            "Resealable pack keeps it fresh.",
            "Roasted and packed in Europe.",
            "A family favourite.",
        ),
        (
            C(
                "Tea",
                ("Green Tea", "Black Tea", "Herbal Tea", "Chai", "Earl Grey"),
                ("100g", "250g", "20 bags", "50 bags"),
                6.0,
                0.35,
                cycle_days=30.0,
            ),
            C(
                "Coffee",
                ("Coffee Beans", "Ground Coffee", "Coffee Capsules", "Instant Coffee"),
                ("250g", "500g", "1kg", "30 capsules"),
                9.0,
                0.35,
                cycle_days=21.0,
            ),
            C(
                "Snacks",
                ("Granola Bars", "Trail Mix", "Crackers", "Dark Chocolate", "Crisps"),
                ("Single", "6-pack", "Family Bag"),
                3.5,
                0.35,
                cycle_days=14.0,
            ),
            C(
                "Breakfast",
                ("Muesli", "Porridge Oats", "Honey", "Peanut Butter", "Jam"),
                ("350g", "500g", "1kg"),
                4.8,
                0.35,
                cycle_days=28.0,
            ),
            C(
                "Beverages",
                ("Sparkling Water", "Orange Juice", "Kombucha", "Oat Milk"),
                ("1L", "6 x 330ml", "12-pack"),
                2.8,
                0.4,
                cycle_days=14.0,
            ),
        ),
    ),
    DepartmentSpec(
        "Beauty & Personal Care",
        ("Lumiere", "Verdana", "Glowa", "Kindskin", "Brisk", "Aurelle"),
        ("Gentle", "Hydrating", "Natural", "Sensitive", "Fresh", "Daily"),
        (
            "Dermatologically tested.",
            "Free from parabens.",
            "Cruelty free.",
            "Suitable for all skin types.",
            "Light, fresh scent.",
            "Made with plant extracts.",
        ),
        (
            C(
                "Hair Care",
                ("Shampoo", "Conditioner", "Hair Mask", "Dry Shampoo"),
                ("250ml", "400ml", "Travel Size"),
                7.5,
                0.4,
                cycle_days=42.0,
            ),
            C(
                "Skin Care",
                ("Moisturiser", "Face Serum", "Cleanser", "Sunscreen"),
                ("30ml", "50ml", "100ml"),
                17.0,
                0.5,
                cycle_days=45.0,
            ),
            C(
                "Oral Care",
                ("Toothpaste", "Mouthwash", "Dental Floss", "Toothbrush Heads"),
                ("Single", "2-pack", "4-pack"),
                5.5,
                0.45,
                cycle_days=40.0,
            ),
            C(
                "Grooming Devices",
                ("Razor", "Electric Toothbrush", "Beard Trimmer", "Hair Dryer"),
                ("Standard", "Travel", "Deluxe Set"),
                38.0,
                0.6,
            ),
            C(
                "Shaving Supplies",
                ("Razor Blades", "Shaving Foam", "Aftershave Balm"),
                ("4-pack", "8-pack", "200ml"),
                9.0,
                0.4,
                cycle_days=30.0,
            ),
        ),
    ),
    DepartmentSpec(
        "Fashion",
        ("Northline", "Urbane", "Kairo", "Fieldwear", "Stride", "Oakmoor"),
        ("Black", "Navy", "Grey", "Olive", "White", "Burgundy"),
        (
            "Organic cotton.",
            "Relaxed fit.",
            "Machine washable at 30 degrees.",
            "Ethically made.",
            "Soft brushed fabric.",
            "Free returns within 30 days.",
        ),
        (
            C("Tops", ("T-Shirt", "Shirt", "Hoodie", "Sweater"), ("S", "M", "L", "XL"), 28.0, 0.45),
            C("Bottoms", ("Jeans", "Chinos", "Shorts", "Joggers"), ("30", "32", "34", "36"), 45.0, 0.4),
            C(
                "Shoes",
                ("Sneakers", "Running Shoes", "Boots", "Sandals"),
                ("EU 40", "EU 42", "EU 44"),
                75.0,
                0.45,
            ),
            C(
                "Socks and Underwear",
                ("Ankle Socks", "Sports Socks", "Boxers", "Briefs"),
                ("3-pack", "5-pack", "7-pack"),
                12.0,
                0.35,
                cycle_days=75.0,
            ),
            C("Accessories", ("Belt", "Cap", "Scarf", "Wallet"), ("One Size", "S-M", "L-XL"), 22.0, 0.45),
        ),
    ),
    DepartmentSpec(
        "Sports & Outdoors",
        ("Peakline", "Trailmark", "Ironway", "Velox", "Summit and Co", "Ridgeback"),
        ("Lightweight", "Pro", "All-Weather", "Endurance", "Trail", "Active"),
        (
            "Tested in the Alps.",
            "Water resistant.",
            "Packs down small.",
            "Reinforced stitching.",
            "Breathable materials.",
            "Backed by a lifetime guarantee.",
        ),
        (
            C(
                "Fitness",
                ("Yoga Mat", "Dumbbells", "Resistance Bands", "Kettlebell", "Foam Roller"),
                ("Light", "Medium", "Heavy"),
                28.0,
                0.5,
            ),
            C(
                "Camping",
                ("Tent", "Sleeping Bag", "Camping Stove", "Headlamp"),
                ("1-person", "2-person", "4-person"),
                70.0,
                0.6,
            ),
            C(
                "Cycling",
                ("Bike Helmet", "Bike Light", "Bike Lock", "Cycling Gloves"),
                ("S", "M", "L"),
                32.0,
                0.45,
            ),
            C(
                "Sports Nutrition",
                ("Protein Powder", "Energy Gel", "Electrolyte Tabs", "Protein Bars"),
                ("Vanilla", "Chocolate", "Berry"),
                19.0,
                0.4,
                cycle_days=30.0,
            ),
        ),
    ),
    DepartmentSpec(
        "Pets",
        ("Pawsome", "Whiskerly", "Barkley", "Furry Friends", "Tailwind", "Petra"),
        ("Grain-Free", "Natural", "Senior", "Puppy", "Indoor", "Active"),
        (
            "Recommended by vets.",
            "High in protein.",
            "No added sugar.",
            "Made in small batches.",
            "Loved by fussy eaters.",
            "Durable and safe.",
        ),
        (
            C(
                "Dog Food",
                ("Dry Dog Food", "Wet Dog Food", "Dog Treats", "Dental Chews"),
                ("400g", "2kg", "12kg"),
                16.0,
                0.55,
                cycle_days=28.0,
            ),
            C(
                "Cat Food",
                ("Dry Cat Food", "Wet Cat Food", "Cat Treats"),
                ("85g x 12", "1.5kg", "4kg"),
                13.0,
                0.5,
                cycle_days=21.0,
            ),
            C(
                "Cat Litter",
                ("Clumping Litter", "Silica Litter", "Wood Pellet Litter"),
                ("5L", "10L", "20L"),
                11.0,
                0.35,
                cycle_days=18.0,
            ),
            C(
                "Pet Accessories",
                ("Litter Box", "Dog Bed", "Cat Scratcher", "Pet Toy", "Dog Lead"),
                ("Small", "Medium", "Large"),
                24.0,
                0.5,
            ),
        ),
    ),
    DepartmentSpec(
        "Baby",
        ("Littleone", "Cuddle Co", "Bambino", "Snugly", "Tiny Steps", "Moonbeam"),
        ("Soft", "Gentle", "Eco", "Everyday", "Sensitive", "Cosy"),
        (
            "Tested by parents.",
            "Free from harsh chemicals.",
            "Hypoallergenic.",
            "Easy one-hand use.",
            "Meets EU safety standards.",
            "Made from plant-based materials.",
        ),
        (
            C(
                "Nappies",
                ("Nappies", "Pull-Up Pants", "Swim Nappies"),
                ("Size 2", "Size 3", "Size 4", "Size 5"),
                13.0,
                0.3,
                cycle_days=10.0,
            ),
            C(
                "Baby Care",
                ("Baby Wipes", "Baby Lotion", "Nappy Cream", "Baby Shampoo"),
                ("Single", "4-pack", "12-pack"),
                5.0,
                0.4,
                cycle_days=21.0,
            ),
            C(
                "Feeding",
                ("Baby Bottle", "Sippy Cup", "Bib Set", "High Chair"),
                ("Standard", "Twin Pack", "Deluxe"),
                18.0,
                0.7,
            ),
            C(
                "Strollers and Car Seats",
                ("Stroller", "Car Seat", "Travel System", "Baby Carrier"),
                ("Grey", "Black", "Sand"),
                240.0,
                0.5,
            ),
        ),
    ),
)


@dataclass(frozen=True)
class ComplementRule:
    """A planted 'bought together' rule: anchors of one product type pull a complement into the cart."""

    name: str
    anchor_category: str  # a full path, "Electronics > Phones"
    anchor_nouns: tuple[str, ...] | None  # None: every product type of the anchor category
    complement_category: str
    complement_nouns: tuple[str, ...]  # one complement item per noun for each anchor


R = ComplementRule
COMPLEMENT_RULES: tuple[ComplementRule, ...] = (
    R(
        "phone -> case, screen protector",
        "Electronics > Phones",
        None,
        "Electronics > Phone Accessories",
        ("Phone Case", "Screen Protector"),
    ),
    R(
        "laptop -> laptop bag, mouse",
        "Electronics > Laptops",
        None,
        "Electronics > Computer Accessories",
        ("Laptop Bag", "Wireless Mouse"),
    ),
    R("camera -> memory card", "Electronics > Cameras", None, "Electronics > Storage", ("Memory Card",)),
    R(
        "coffee machine -> coffee",
        "Home & Kitchen > Coffee Machines",
        ("Espresso Machine", "Drip Coffee Maker", "Capsule Machine"),
        "Food & Drink > Coffee",
        ("Coffee Beans", "Coffee Capsules"),
    ),
    R(
        "razor -> razor blades",
        "Beauty & Personal Care > Grooming Devices",
        ("Razor",),
        "Beauty & Personal Care > Shaving Supplies",
        ("Razor Blades",),
    ),
    R(
        "electric toothbrush -> toothbrush heads",
        "Beauty & Personal Care > Grooming Devices",
        ("Electric Toothbrush",),
        "Beauty & Personal Care > Oral Care",
        ("Toothbrush Heads",),
    ),
    R(
        "tent -> sleeping bag",
        "Sports & Outdoors > Camping",
        ("Tent",),
        "Sports & Outdoors > Camping",
        ("Sleeping Bag",),
    ),
    R(
        "running shoes -> sports socks",
        "Fashion > Shoes",
        ("Running Shoes",),
        "Fashion > Socks and Underwear",
        ("Sports Socks",),
    ),
    R(
        "litter box -> cat litter",
        "Pets > Pet Accessories",
        ("Litter Box",),
        "Pets > Cat Litter",
        ("Clumping Litter", "Silica Litter"),
    ),
    R("baby bottle -> baby wipes", "Baby > Feeding", ("Baby Bottle",), "Baby > Baby Care", ("Baby Wipes",)),
)


# --- the category tree as flat arrays ----------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """Departments and categories flattened; category c belongs to department `cat_dept[c]`."""

    dept_names: list[str]
    cat_paths: list[str]
    cat_dept: np.ndarray  # int32[n_cats]
    cat_cycle: np.ndarray  # float64[n_cats], nan when not consumable
    cat_price_median: np.ndarray
    cat_price_sigma: np.ndarray
    n_brands: int  # brands per department (all departments list the same number)

    @property
    def n_cats(self) -> int:
        return len(self.cat_paths)

    def consumables(self) -> dict[str, float]:
        """Consumable category paths and their re-buy cycle in days."""
        return {p: float(c) for p, c in zip(self.cat_paths, self.cat_cycle, strict=True) if not np.isnan(c)}


def build_tree() -> Tree:
    """Flatten `DEPARTMENTS` into arrays."""
    paths, dept, cycle, med, sig = [], [], [], [], []
    for d, department in enumerate(DEPARTMENTS):
        for cat in department.categories:
            paths.append(f"{department.name}{CATEGORY_SEPARATOR}{cat.name}")
            dept.append(d)
            cycle.append(np.nan if cat.cycle_days is None else cat.cycle_days)
            med.append(cat.price_median)
            sig.append(cat.price_sigma)
    n_brands = {len(d.brands) for d in DEPARTMENTS}
    assert len(n_brands) == 1, "every department lists the same number of brands"
    return Tree(
        dept_names=[d.name for d in DEPARTMENTS],
        cat_paths=paths,
        cat_dept=np.asarray(dept, dtype=np.int32),
        cat_cycle=np.asarray(cycle, dtype=np.float64),
        cat_price_median=np.asarray(med),
        cat_price_sigma=np.asarray(sig),
        n_brands=n_brands.pop(),
    )


def _category_specs() -> list[tuple[DepartmentSpec, CategorySpec]]:
    return [(d, c) for d in DEPARTMENTS for c in d.categories]


# --- items ---------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    """Items as arrays (index = item index, id ``i{index}``) plus the planted structure on them."""

    tree: Tree
    cat: np.ndarray  # int32 category of each item
    brand: np.ndarray  # int16 brand index within the item's department
    noun: np.ndarray  # int16 product type index within the category
    tier: np.ndarray  # int8 price tier within the category: 0 budget, 1 mid, 2 premium
    price: np.ndarray  # float64 list price
    base_weight: np.ndarray  # float64 Zipf popularity within the category
    created_us: np.ndarray  # int64 creation time (unix microseconds)
    hidden: np.ndarray
    in_stock: np.ndarray
    growth: np.ndarray  # float64 popularity multiplier reached at the end of the period (1 = flat)
    comp_indptr: np.ndarray  # CSR anchor item -> complement items
    comp_items: np.ndarray
    comp_rule: np.ndarray  # int16 index into COMPLEMENT_RULES for each complement entry
    table: pa.Table  # CATALOGUE_SCHEMA (plus ``vectors`` when image vectors are planted)

    @property
    def n_items(self) -> int:
        return len(self.cat)

    @property
    def consumable(self) -> np.ndarray:
        return ~np.isnan(self.tree.cat_cycle[self.cat])


def int_strings(prefix: str, values: np.ndarray) -> pa.StringArray:
    """``prefix + str(v)`` for non-negative integers, built byte-wise (5x faster than a pyarrow cast)."""
    v = np.asarray(values, dtype=np.int64)
    if len(v) and v.min() < 0:
        raise ValueError("int_strings needs non-negative integers")
    pre = prefix.encode()
    n_digits = np.ones(len(v), dtype=np.int64)
    top = int(v.max()) if len(v) else 0
    power = 10
    while power <= top:
        n_digits += v >= power
        power *= 10
    offsets = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(n_digits + len(pre), out=offsets[1:])
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    for i, ch in enumerate(pre):
        buf[offsets[:-1] + i] = ch
    last = offsets[1:] - 1
    rest = v.copy()
    for d in range(int(n_digits.max()) if len(v) else 0):
        live = n_digits > d
        buf[(last - d)[live]] = 48 + rest[live] % 10
        rest //= 10
    return pa.LargeStringArray.from_buffers(len(v), pa.py_buffer(offsets), pa.py_buffer(buf)).cast(
        pa.string()
    )


def _pick(
    words: list[tuple[str, ...]], group: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, a uniform index into ``words[group[row]]`` and the chosen word (object array)."""
    sizes = np.array([len(w) for w in words])
    idx = (rng.random(len(group)) * sizes[group]).astype(np.int64)
    flat = np.array([w for ws in words for w in ws], dtype=object)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return idx, flat[starts[group] + idx]


def build_catalogue(
    rng: np.random.Generator,
    n_items: int,
    start_us: int,
    end_us: int,
    *,
    zipf_exponent: float,
    new_item_share: float,
    trending_share: float,
    fading_share: float,
) -> Catalogue:
    """Draw ``n_items`` items over the tree, with prices, popularity, trends and complements."""
    tree = build_tree()
    specs = _category_specs()
    # Every category gets at least a few items; the rest follow lognormal category sizes.
    cat_share = rng.lognormal(0.0, 0.5, tree.n_cats)
    cat = np.concatenate(
        [
            np.arange(tree.n_cats),
            rng.choice(tree.n_cats, n_items - tree.n_cats, p=cat_share / cat_share.sum()),
        ]
    ).astype(np.int32)
    perm = rng.permutation(n_items)
    cat = cat[perm]
    # One item per category exists from the start, so every category always has something to show.
    guaranteed = perm < tree.n_cats
    dept = tree.cat_dept[cat]

    # Brands: a Zipf-ish share within each department, so a few brands dominate.
    brand_p = 1.0 / np.arange(1, tree.n_brands + 1) ** 0.8
    brand = rng.choice(tree.n_brands, n_items, p=brand_p / brand_p.sum()).astype(np.int16)
    noun, noun_word = _pick([c.nouns for _, c in specs], cat, rng)
    _, variant_word = _pick([c.variants for _, c in specs], cat, rng)
    _, adjective = _pick([d.adjectives for d in DEPARTMENTS], dept, rng)
    brand_names = np.array([b for d in DEPARTMENTS for b in d.brands], dtype=object)
    brand_word = brand_names[dept * tree.n_brands + brand]

    # Prices: log-normal per category, premium brands (low index) a little dearer; charm endings.
    raw = tree.cat_price_median[cat] * np.exp(
        rng.normal(0.0, tree.cat_price_sigma[cat]) + 0.08 * (brand == 0)
    )
    price = np.where(raw < 10, np.floor(raw) + 0.49, np.floor(raw) + 0.99)
    price = np.round(np.maximum(price, 0.99), 2)
    # Price tier = tertile of the price within its category.
    tier = np.zeros(n_items, dtype=np.int8)
    order = np.lexsort((price, cat))
    counts = np.bincount(cat, minlength=tree.n_cats)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_cat = np.empty(n_items, dtype=np.int64)
    rank_in_cat[order] = np.arange(n_items) - first[cat[order]]
    tier[:] = np.minimum(3 * rank_in_cat // np.maximum(counts[cat], 1), 2)

    # Popularity: Zipf over a random rank within the category.
    pop_rank = np.empty(n_items, dtype=np.int64)
    shuffled = np.lexsort((rng.random(n_items), cat))
    pop_rank[shuffled] = np.arange(n_items) - first[cat[shuffled]]
    base_weight = 1.0 / (pop_rank + 1.0) ** zipf_exponent

    # Creation: most items exist before the period (up to two years back), some appear during it.
    is_new = (rng.random(n_items) < new_item_share) & ~guaranteed
    span = end_us - start_us
    created_us = np.where(
        is_new,
        start_us + (rng.random(n_items) * span * 0.9).astype(np.int64),
        start_us - (rng.random(n_items) * 730 * US_PER_DAY).astype(np.int64) - US_PER_DAY,
    )
    created_us = (created_us // 1_000_000) * 1_000_000
    hidden = rng.random(n_items) < 0.01
    in_stock = rng.random(n_items) >= 0.04

    # Trends: some existing items rise (growth > 1), some fade (growth < 1) over the period.
    u = rng.random(n_items)
    growth = np.ones(n_items)
    rising = (u < trending_share) & ~is_new & ~hidden
    fading = (u >= trending_share) & (u < trending_share + fading_share) & ~is_new & ~hidden
    growth[rising] = rng.uniform(5.0, 12.0, rising.sum())
    growth[fading] = 1.0 / rng.uniform(4.0, 8.0, fading.sum())

    comp_indptr, comp_items, comp_rule = _plant_complements(rng, tree, cat, noun, brand, base_weight)
    table = _item_table(
        tree,
        cat,
        dept,
        noun_word,
        variant_word,
        adjective,
        brand_word,
        price,
        created_us,
        hidden,
        in_stock,
        is_new,
        rising,
        rng,
    )
    return Catalogue(
        tree=tree,
        cat=cat,
        brand=brand,
        noun=noun.astype(np.int16),
        tier=tier,
        price=price,
        base_weight=base_weight,
        created_us=created_us,
        hidden=hidden,
        in_stock=in_stock,
        growth=growth,
        comp_indptr=comp_indptr,
        comp_items=comp_items,
        comp_rule=comp_rule,
        table=table,
    )


def _plant_complements(
    rng: np.random.Generator,
    tree: Tree,
    cat: np.ndarray,
    noun: np.ndarray,
    brand: np.ndarray,
    weight: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give every anchor item one complement item per complement noun of its rule.

    The complement is of the anchor's brand when one exists (a Voltix case for a Voltix phone),
    else any item of that type, drawn by popularity. One loop per rule and noun, not per item.
    """
    specs = _category_specs()
    cat_index = {p: i for i, p in enumerate(tree.cat_paths)}
    anchors, comps, rules = [], [], []
    for r, rule in enumerate(COMPLEMENT_RULES):
        a_cat = cat_index[rule.anchor_category]
        c_cat = cat_index[rule.complement_category]
        a_nouns = specs[a_cat][1].nouns
        c_nouns = specs[c_cat][1].nouns
        wanted = (
            np.arange(len(a_nouns))
            if rule.anchor_nouns is None
            else [a_nouns.index(n) for n in rule.anchor_nouns]
        )
        anchor_items = np.flatnonzero((cat == a_cat) & np.isin(noun, wanted))
        for c_noun in rule.complement_nouns:
            pool = np.flatnonzero((cat == c_cat) & (noun == c_nouns.index(c_noun)))
            if len(anchor_items) == 0 or len(pool) == 0:
                continue
            p = weight[pool] / weight[pool].sum()
            chosen = pool[rng.choice(len(pool), len(anchor_items), p=p)]
            # Prefer a same-brand complement: the most popular pool item of the anchor's brand.
            by_brand = np.full(tree.n_brands, -1, dtype=np.int64)
            best_first = pool[np.argsort(-weight[pool], kind="stable")]
            brands_present, first_of_brand = np.unique(brand[best_first], return_index=True)
            by_brand[brands_present] = best_first[first_of_brand]
            same = by_brand[brand[anchor_items]]
            chosen = np.where(same >= 0, same, chosen)
            anchors.append(anchor_items)
            comps.append(chosen)
            rules.append(np.full(len(anchor_items), r, dtype=np.int16))
    n_items = len(cat)
    if not anchors:
        return np.zeros(n_items + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int16)
    a = np.concatenate(anchors)
    c = np.concatenate(comps)
    rr = np.concatenate(rules)
    order = np.argsort(a, kind="stable")
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n_items), out=indptr[1:])
    return indptr, c[order], rr[order]


def _join(*parts: object) -> np.ndarray:
    """Element-wise string concatenation of object arrays and plain strings."""
    out = np.asarray(parts[0], dtype=object)
    for p in parts[1:]:
        out = out + (p if isinstance(p, str) else np.asarray(p, dtype=object))
    return out


def _item_table(
    tree: Tree,
    cat: np.ndarray,
    dept: np.ndarray,
    noun_word: np.ndarray,
    variant_word: np.ndarray,
    adjective: np.ndarray,
    brand_word: np.ndarray,
    price: np.ndarray,
    created_us: np.ndarray,
    hidden: np.ndarray,
    in_stock: np.ndarray,
    is_new: np.ndarray,
    rising: np.ndarray,
    rng: np.random.Generator,
) -> pa.Table:
    n = len(cat)
    title = _join(adjective, " ", noun_word, " ", variant_word, " by ", brand_word)
    features = np.array([f for d in DEPARTMENTS for f in d.features], dtype=object)
    n_feat = len(DEPARTMENTS[0].features)
    f1 = rng.integers(0, n_feat, n)
    f2 = (f1 + rng.integers(1, n_feat, n)) % n_feat
    noun_lower = np.char.lower(noun_word.astype(str)).astype(object)
    article = np.where(np.isin(np.char.lower(adjective.astype("U1")), list("aeiou")), "An ", "A ")
    description = _join(
        article.astype(object),
        np.char.lower(adjective.astype(str)).astype(object),
        " ",
        noun_lower,
        " (",
        variant_word,
        ") from ",
        brand_word,
        ". ",
        features[dept * n_feat + f1],
        " ",
        features[dept * n_feat + f2],
    )
    path = np.array(tree.cat_paths, dtype=object)[cat]

    # Tags: product type, adjective, department slug, plus "new" and "trending" where planted.
    slug = np.array([d.name.lower().replace(" & ", "-").replace(" ", "-") for d in DEPARTMENTS], dtype=object)
    cols = np.stack(
        [
            noun_lower,
            np.char.lower(adjective.astype(str)).astype(object),
            slug[dept],
            np.where(is_new, "new", None),
            np.where(rising, "trending", None),
        ],
        axis=1,
    )
    present = np.not_equal(cols, None)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    tags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(cols[present].tolist(), type=pa.string()))

    consumable = ~np.isnan(tree.cat_cycle[cat])
    cycle = tree.cat_cycle[cat]
    cycle_txt = np.where(consumable, np.char.mod("%d", np.nan_to_num(cycle).astype(np.int64)), "null").astype(
        object
    )
    attributes = _join(
        '{"product_type": "',
        noun_word,
        '", "variant": "',
        variant_word,
        '", "consumable": ',
        np.where(consumable, "true", "false").astype(object),
        ', "cycle_days": ',
        cycle_txt,
        "}",
    )
    return pa.Table.from_arrays(
        [
            int_strings("i", np.arange(n)),
            pa.array(title.tolist(), type=pa.string()),
            pa.array(description.tolist(), type=pa.string()),
            pa.array(path.tolist(), type=pa.string()),
            pa.array(brand_word.tolist(), type=pa.string()),
            pa.array(price, type=pa.float64()),
            tags,
            pa.array(in_stock),
            pa.array(hidden),
            pa.array(created_us, type=UTC_TIMESTAMP),
            pa.array(attributes.tolist(), type=pa.string()),
        ],
        schema=CATALOGUE_SCHEMA,
    )


def query_pool() -> tuple[pa.StringArray, np.ndarray, np.ndarray]:
    """Search queries per category, in the tree's category order (product types, with brands and
    adjectives): the strings, each category's offset into them, and its count."""
    queries: list[str] = []
    sizes = []
    for d, c in _category_specs():
        mine = []
        for i, noun in enumerate(c.nouns):
            low = noun.lower()
            mine += [
                low,
                f"{d.brands[i % len(d.brands)].lower()} {low}",
                f"{d.adjectives[i % len(d.adjectives)].lower()} {low}",
            ]
        mine += [f"cheap {c.nouns[0].lower()}", f"best {c.name.lower()}"]
        queries += mine
        sizes.append(len(mine))
    size = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(size)[:-1]])
    return pa.array(queries, type=pa.string()), offsets, size
